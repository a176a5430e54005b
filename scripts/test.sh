#!/usr/bin/env bash
# Set up .venv with the dev tools and run the test suite (unit, integration, e2e; not the slow loops).
# Two phases: everything but the clock-measuring tests on TEST_WORKERS processes (3 by default: most
# tests wait on servers, locks and retries; the e2e tests all on one of them, one module at a time),
# then the `timing` tests alone, so no other test loads the machine while they measure. Both phases run;
# the script fails when either does.
# Extra arguments run one plain pytest instead, e.g. `bash scripts/test.sh -m unit` or a file path.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev || exit 1
export PATH="$PWD/.venv/bin:$PATH"
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
start=$SECONDS
.venv/bin/python -m pytest -m "not slow and not timing" -n "${TEST_WORKERS:-3}" --dist loadgroup --durations=25
first=$?
echo "== the timing tests, alone (after $((SECONDS - start)) s)"
.venv/bin/python -m pytest -m "timing and not slow" --durations=10
second=$?
echo "== tests took $((SECONDS - start)) s (phase 1 exit $first, timing phase exit $second)"
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
