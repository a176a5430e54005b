#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project; pass "dev" (test tools) or "demo" as an extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "knack-services needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
extra=""
[ -n "${1:-}" ] && extra="[$1]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
# (pip's notes about this machine's optional local package mirrors are noise: filter them out)
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
