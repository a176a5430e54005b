"""prefect.yaml against the code and the config: entrypoints import, parameters validate, names match."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.sync_app import deployment_name
from tasks.domain.config import load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def load_flow(entrypoint: str) -> Any:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_imports_and_accepts_its_parameters(deployment: dict[str, Any]) -> None:
    flow = load_flow(deployment["entrypoint"])
    params = dict(deployment.get("parameters") or {})
    if "container" in flow.parameters.required and "container" not in params:
        params.update({"app": "demo", "container": "object_1"})  # seed services take them at run time
    flow.validate_parameters(params)
    for schedule in deployment.get("schedules") or []:
        flow.validate_parameters({**params, **(schedule.get("parameters") or {})})


def test_every_configured_container_has_a_scheduled_sync_deployment() -> None:
    config = load_config(ROOT / "config" / "knack-services.yaml")
    syncs = {d["name"]: d for d in DEPLOYMENTS if d["entrypoint"] == "flows/sync.py:sync"}
    for app in config.apps.values():
        for key in app.containers:
            name = deployment_name(app.name, key, "dev").split("/", 1)[1]
            assert name in syncs, f"no sync deployment for {app.name}/{key}"
            assert syncs[name]["parameters"] == {"app": app.name, "container": key, "env": "dev"}
            kinds = [s.get("parameters", {}).get("full", False) for s in syncs[name]["schedules"]]
            assert kinds == [False, True]  # hourly incremental, nightly full reconcile
