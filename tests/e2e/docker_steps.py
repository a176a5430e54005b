"""Stand-ins for prefect-docker's build and push steps, for a machine with no Docker engine.

They keep prefect-docker's own ``cacheable`` (the reason a deploy builds once however many deployments
it saves), its signatures and its outputs; instead of talking to a Docker engine they append one line
per build or push to the file named by ``DOCKER_STEPS_LOG``. ``tests/e2e/test_deployment.py`` deploys a
copy of prefect.yaml that names these steps in place of ``prefect_docker.deployments.steps``.
"""

from __future__ import annotations

import os
from typing import Any

from prefect_docker.deployments.steps import cacheable


def _log(line: str) -> None:
    with open(os.environ["DOCKER_STEPS_LOG"], "a", encoding="utf-8") as out:
        out.write(line + "\n")


@cacheable
def build_docker_image(image_name: str, dockerfile: str = "Dockerfile", tag: str | None = None,
                       additional_tags: list[str] | None = None, **build_kwargs: Any) -> dict[str, Any]:
    assert tag, "the build step needs the tag from scripts/image_tag.py"
    assert os.path.exists(dockerfile), dockerfile
    _log(f"build {image_name}:{tag} {dockerfile}")
    return {"image_name": image_name, "tag": tag, "image": f"{image_name}:{tag}",
            "image_id": "sha256:" + "0" * 64, "additional_tags": additional_tags or []}


@cacheable
def push_docker_image(image_name: str, tag: str | None = None, credentials: dict[str, Any] | None = None,
                      additional_tags: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    _log(f"push {image_name}:{tag}")
    return {"image_name": image_name, "tag": tag, "image": f"{image_name}:{tag}",
            "additional_tags": additional_tags or []}
