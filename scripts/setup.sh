#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project at the exact versions in uv.lock.
# Arguments are extras: "dev" (test tools), "demo", "bench"; several may be given.
# Needs only Python: uv itself comes from PyPI into the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "knack-services needs Python 3.11 or newer")'

venv_ok() {
  # a real folder (not a link), whose interpreter starts and is 3.11+
  [ -d .venv ] && [ ! -L .venv ] && [ -x .venv/bin/python ] \
    && .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if [ -e .venv ] || [ -L .venv ]; then
  if ! venv_ok; then
    if [ -L .venv ]; then why="a link to $(readlink .venv)"; else why="not a working Python 3.11+ venv"; fi
    echo "setup: .venv is $why; recreating it" >&2
    rm -rf .venv
  fi
fi
[ -d .venv ] || "$PYTHON" -m venv .venv

if ! .venv/bin/uv --version 2>/dev/null | grep -q "^uv $UV_VERSION\b"; then
  # (pip's notes about this machine's optional local package mirrors are noise: filter them out)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi

extras=()
for extra in "$@"; do extras+=(--extra "$extra"); done
# --frozen: install exactly the lock, never re-resolve; --inexact: keep uv and extras installed earlier
# UV_SYSTEM_CERTS: trust the machine's certificate store, as pip does (a TLS-inspecting proxy's CA lives there)
# --compile-bytecode: every module compiled once here; with PYTHONDONTWRITEBYTECODE=1 (or a read-only venv)
# Python would otherwise compile the sources again in every process (`import flows.sync` 4-5 s instead of ~2 s)
UV_PROJECT_ENVIRONMENT="$PWD/.venv" UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}" \
  .venv/bin/uv sync --frozen --inexact --quiet --compile-bytecode --python .venv/bin/python "${extras[@]}"
# left out of every install (pyproject.toml's exclude-dependencies); a .venv made before that may still hold them
for left_out in pyarrow arcgis-geometry dask; do
  if .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${left_out//-/_}') is None)"; then
    .venv/bin/uv pip uninstall --quiet --python .venv/bin/python "$left_out"
  fi
done
