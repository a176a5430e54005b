#!/usr/bin/env bash
# Lint the Dockerfile with hadolint, then prove its install steps: copy what its COPY lines name into a
# scratch folder, run its `pip install` lines in a fresh venv there, and start the image's command.
# (No Docker engine is needed; .venv must exist: scripts/setup.sh dev.)
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/hadolint --failure-threshold warning Dockerfile
echo "hadolint: clean"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk '$1 == "COPY" { for (i = 2; i < NF; i++) print $i }' Dockerfile | while read -r src; do
  cp -r "$src" "$work/"
done
python3 -m venv "$work/.image-python"
(
  cd "$work"
  export PATH="$work/.image-python/bin:$PATH"
  # the same commands; pip may reuse this machine's wheel cache (only where the wheels come from differs)
  grep -E '^RUN pip install' "$OLDPWD/Dockerfile" | sed 's/^RUN //; s/ --no-cache-dir//' | while read -r step; do
    echo "+ $step"
    bash -c "$step" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  done
  if pip show pytest >/dev/null 2>&1; then echo "dev extras leaked into the image" >&2; exit 1; fi
  python flows/sync.py --help >/dev/null
)
echo "Dockerfile install steps: ok"
