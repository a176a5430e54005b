#!/usr/bin/env bash
# Lint the Dockerfile with hadolint, then replay its install steps in a scratch folder (no Docker engine
# needed; see scripts/check_dockerfile.py). .venv must exist: scripts/setup.sh dev.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/hadolint --failure-threshold warning Dockerfile
echo "hadolint: clean"
.venv/bin/python scripts/check_dockerfile.py
