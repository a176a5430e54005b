#!/usr/bin/env bash
# Set up .venv and run the whole pipeline against local emulators, no accounts needed.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Setting up .venv (first time: a minute or two) ..."
bash scripts/setup.sh demo
exec .venv/bin/python scripts/demo.py "$@"
