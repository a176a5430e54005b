#!/usr/bin/env bash
# Set up .venv with the dev tools and run the test suite (unit, integration, e2e; not the slow loops).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -m "not slow" "$@"
