#!/usr/bin/env bash
# prefect.yaml's build and push steps: `bash scripts/image.sh build|push`.
# IMAGE names the image (default knack-services:latest). SKIP_IMAGE_BUILD=1 skips both steps, for
# deploying to a process pool from a checkout (tests, machines without a Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-knack-services:latest}
if [ "${SKIP_IMAGE_BUILD:-0}" = "1" ]; then
  echo "image $1 skipped (SKIP_IMAGE_BUILD=1)"
  exit 0
fi
case "$1" in
  build) docker build --tag "$IMAGE" . ;;
  push) docker push "$IMAGE" ;;
  *) echo "usage: scripts/image.sh build|push" >&2; exit 2 ;;
esac
