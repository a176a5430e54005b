#!/usr/bin/env bash
# Set up .venv with the dev tools and run the test suite (unit, integration, e2e; not the slow loops).
# Two phases. First every test that starts no Prefect server of its own and measures no clock, on
# TEST_WORKERS processes (pytest-xdist, 2 by default: most of these tests wait on servers, locks and
# retries rather than compute). Then, in one process, the e2e tests (each starts Prefect servers, workers
# or containers) and the `timing` tests (rates and deadlines measured against the clock), so that nothing
# else loads the machine under them. Both phases run; the script fails when either does.
# Extra arguments run one plain pytest instead, e.g. `bash scripts/test.sh -m unit` or a file path.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev || exit 1
export PATH="$PWD/.venv/bin:$PATH"
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
start=$SECONDS
.venv/bin/python -m pytest -m "not slow and not timing and not e2e" -n "${TEST_WORKERS:-2}" --durations=25
first=$?
echo "== e2e and timing tests, in one process (after $((SECONDS - start)) s)"
.venv/bin/python -m pytest -m "(e2e or timing) and not slow" --durations=25
second=$?
echo "== tests took $((SECONDS - start)) s (first phase exit $first, second phase exit $second)"
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
