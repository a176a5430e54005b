"""prefect.yaml's first build step: a deploy without an image is refused, the tag is immutable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.image_tag import commit_tag, problems

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"IMAGE": "registry.example.org/knack-services", "PROJECT_DIR": "/app"}


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, ["IMAGE is not set", "PROJECT_DIR is not set"]),
    ({**GOOD, "IMAGE": "  "}, ["IMAGE is not set"]),
    ({**GOOD, "IMAGE": "registry.example.org/knack-services:latest"}, ["is not an image repository"]),
    ({**GOOD, "IMAGE": "{{ $IMAGE }}"}, ["is not an image repository"]),
    ({**GOOD, "IMAGE_TAG": "latest"}, ["is not an immutable tag"]),
    ({**GOOD, "PROJECT_DIR": ""}, ["PROJECT_DIR is not set"]),
    (GOOD, []),
    ({**GOOD, "IMAGE": "localhost:5000/knack-services", "IMAGE_TAG": "v1.2.0"}, []),
])
def test_what_the_deploy_refuses(environ: dict[str, str], expected: list[str]) -> None:
    found = problems(environ)
    assert len(found) == len(expected), found
    for line, text in zip(found, expected, strict=True):
        assert text in line


def test_the_tag_is_the_commit_and_the_same_every_time() -> None:
    tag = commit_tag()
    assert re.fullmatch(r"git-[0-9a-f]{12}(-dirty-[0-9a-f]{8})?", tag)
    assert commit_tag() == tag


def test_the_script_exits_1_with_one_line_per_problem() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "IMAGE_TAG", "PROJECT_DIR")}
    proc = subprocess.run([sys.executable, "scripts/image_tag.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert [line.split(":")[0] for line in proc.stderr.splitlines()] == ["prefect deploy refused"] * 2
    proc = subprocess.run([sys.executable, "scripts/image_tag.py"], cwd=ROOT, env={**env, **GOOD, "IMAGE_TAG": "v1"},
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "v1\n")
