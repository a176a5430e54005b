#!/usr/bin/env bash
# Set up .venv with the dev tools and run the test suite (unit, integration, e2e; not the slow loops).
# Three phases. First every test that starts no Prefect server of its own and measures no clock, on
# TEST_WORKERS processes (pytest-xdist, 3 by default on 2 cores: a test's waits on servers, locks and
# retries leave CPU to a third), which steal queued tests from each other (`--dist worksteal`: with
# the default scheduling a worker whose own queue ran out sat idle for minutes). Then the e2e tests
# (each module starts its Prefect servers, workers or containers), two modules at a time, each module
# whole on one process (`--dist loadfile`: a module's servers and image are set up once). Last, with
# nothing else running, the `timing` tests (rates and deadlines measured against the clock) on two
# processes: each of them mostly waits (sleeps, deadlines, a rate limit), so two at a time still leave
# each a core of its own. Every phase runs; the script fails when any does.
# Extra arguments run one plain pytest instead, e.g. `bash scripts/test.sh -m unit` or a file path.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev || exit 1
export PATH="$PWD/.venv/bin:$PATH"
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
start=$SECONDS
.venv/bin/python -m pytest -m "not slow and not timing and not e2e" -n "${TEST_WORKERS:-3}" --dist worksteal \
    --durations=25
first=$?
echo "== e2e tests, two modules at a time (after $((SECONDS - start)) s)"
.venv/bin/python -m pytest tests/e2e -m "e2e and not timing and not slow" -n 2 --dist loadfile \
    --durations=25
second=$?
echo "== timing tests, two at a time (after $((SECONDS - start)) s)"
.venv/bin/python -m pytest -m "timing and not slow" -n 2 --dist worksteal --durations=25
third=$?
echo "== tests took $((SECONDS - start)) s (phase exits: $first $second $third)"
[ "$first" -eq 0 ] && [ "$second" -eq 0 ] && [ "$third" -eq 0 ]
