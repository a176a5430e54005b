"""prefect.yaml's first build step: refuse a deploy without an image, and print the image's immutable tag.

``IMAGE`` is the image repository (``registry.example.org/knack-services``, no tag). The tag is the
commit (``git-<sha12>``), with ``-dirty-<hash of the diff>`` when the checkout has uncommitted changes,
so a tag never names two different builds; ``IMAGE_TAG`` overrides it (a release name, say).
The same checkout always gives the same tag, so prefect-docker's build and push steps, which cache by
their arguments, run once per ``prefect deploy`` however many deployments it saves.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def commit_tag() -> str:
    tag = "git-" + git("rev-parse", "--short=12", "HEAD").strip()
    diff = git("diff", "HEAD", "--binary")
    if diff:
        tag += "-dirty-" + hashlib.sha256(diff.encode()).hexdigest()[:8]
    return tag


def problems(environ: dict[str, str]) -> list[str]:
    """What is wrong with the deploy's environment, one sentence each."""
    found = []
    image = environ.get("IMAGE", "").strip()
    if not image:
        found.append("IMAGE is not set: export IMAGE=<registry>/knack-services (the repository, no tag)")
    elif not _REPOSITORY.fullmatch(image):
        found.append(f"IMAGE={image!r} is not an image repository such as registry.example.org/knack-services "
                     "(no tag: the tag is the commit, or IMAGE_TAG)")
    tag = environ.get("IMAGE_TAG", "").strip()
    if tag and (not _TAG.fullmatch(tag) or tag == "latest"):
        found.append(f"IMAGE_TAG={tag!r} is not an immutable tag (letters, digits, '.', '_', '-'; not 'latest')")
    if not environ.get("PROJECT_DIR", "").strip():
        found.append("PROJECT_DIR is not set: export PROJECT_DIR=/app (where the code is in the image)")
    return found


def main() -> int:
    if found := problems(dict(os.environ)):
        for line in found:
            print(f"prefect deploy refused: {line}", file=sys.stderr)
        return 1
    print(os.environ.get("IMAGE_TAG", "").strip() or commit_tag())
    return 0


if __name__ == "__main__":
    sys.exit(main())
