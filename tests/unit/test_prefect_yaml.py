"""prefect.yaml against the code and the config: generated from the config, entrypoints import,
parameters validate, one image for every deployment, one run at a time per container."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.sync_app import deployment_name
from scripts.deployments import render
from tasks.domain.config import ENVS, load_config, parse_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS: list[dict[str, Any]] = PREFECT_YAML["deployments"]
CONFIG = load_config(ROOT / "config" / "knack-services.yaml")
SYNCS = {d["name"]: d for d in DEPLOYMENTS if d["entrypoint"] == "flows/sync.py:sync"}


def load_flow(entrypoint: str) -> Any:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def test_prefect_yaml_is_what_the_config_generates() -> None:
    assert (ROOT / "prefect.yaml").read_text() == render(CONFIG), \
        "prefect.yaml and config/knack-services.yaml disagree: run python scripts/deployments.py"


def test_a_container_added_to_the_config_gets_deployments_in_both_envs() -> None:
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw["apps"]["demo"]["containers"]["object_9"] = {"modified_date_field_id": "field_1"}
    names = {d["name"]: d for d in yaml.safe_load(render(parse_config(raw, "x.yaml")))["deployments"]}
    for env in ENVS:
        assert names[f"demo-object-9-{env}"]["parameters"] == {"app": "demo", "container": "object_9", "env": env}
    assert "demo-object-9-dev" not in SYNCS


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_imports_and_accepts_its_parameters(deployment: dict[str, Any]) -> None:
    flow = load_flow(deployment["entrypoint"])
    params = dict(deployment.get("parameters") or {})
    if "container" in flow.parameters.required and "container" not in params:
        params.update({"app": "demo", "container": "object_1", "env": "dev"})  # given at run time
    flow.validate_parameters(params)
    for schedule in deployment.get("schedules") or []:
        flow.validate_parameters({**params, **(schedule.get("parameters") or {})})


def test_every_container_has_a_sync_deployment_per_env_that_runs_one_at_a_time() -> None:
    expected = set()
    for app in CONFIG.apps.values():
        for key in app.containers:
            for env in ENVS:
                name = deployment_name(app.name, key, env).split("/", 1)[1]
                expected.add(name)
                dep = SYNCS[name]
                assert dep["parameters"] == {"app": app.name, "container": key, "env": env}
                # a run that finds another going waits its turn: a nightly reconcile is never cancelled
                assert dep["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
                kinds = [(s.get("parameters", {}).get("full", False), s.get("parameters", {}).get("republish", False))
                         for s in dep["schedules"]]
                # hourly incremental, nightly reconcile, the republish of republish_cron
                assert kinds == [(False, False), (True, False), (True, True)]
                # republish_cron's hours and days, at the deployment's own minute
                assert dep["schedules"][2]["cron"].split()[1:] == CONFIG.settings.republish_cron.split()[1:]
                assert all(s.get("active", True) == (env == "prod") for s in dep["schedules"])
    assert set(SYNCS) == expected  # and no deployment of a container the config lacks


def test_without_republish_cron_no_republish_is_scheduled() -> None:
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw.pop("republish_cron")
    deployments = yaml.safe_load(render(parse_config(raw, "x.yaml")))["deployments"]
    sync = next(d for d in deployments if d["entrypoint"] == "flows/sync.py:sync")
    assert [s.get("parameters", {}) for s in sync["schedules"]] == [{}, {"full": True}]
    raw["republish_cron"] = "0 5 1 * *"
    deployments = yaml.safe_load(render(parse_config(raw, "x.yaml")))["deployments"]
    sync = next(d for d in deployments if d["entrypoint"] == "flows/sync.py:sync")
    minute = sync["schedules"][1]["cron"].split()[0]  # the nightly's minute
    assert sync["schedules"][2] == {"cron": f"{minute} 5 1 * *", "timezone": "America/Chicago",
                                    "parameters": {"full": True, "republish": True}}


def test_one_build_and_one_push_with_prefect_docker_and_every_deployment_runs_the_built_tag() -> None:
    build, push = PREFECT_YAML["build"], PREFECT_YAML["push"]
    steps = [next(iter(s)) for s in build + push]
    assert steps == ["prefect.deployments.steps.run_shell_script",
                     "prefect_docker.deployments.steps.build_docker_image",
                     "prefect_docker.deployments.steps.push_docker_image"]
    check, image = build[0][steps[0]], build[1][steps[1]]
    assert check["script"] == "python scripts/image_tag.py"
    assert image["id"] == "build-image" and image["tag"] == "{{ image-tag.stdout }}"
    for dep in DEPLOYMENTS:
        assert dep["work_pool"]["job_variables"]["image"] == "{{ build-image.image }}", dep["name"]
        assert dep["work_pool"]["name"] == "knack-docker"


def test_every_flow_parameter_has_a_description_and_env_is_a_required_choice() -> None:
    for entrypoint in {d["entrypoint"] for d in DEPLOYMENTS}:
        schema = load_flow(entrypoint).parameters
        for name, prop in schema.properties.items():
            assert prop.get("description"), f"{entrypoint}: {name} has no description"
        assert "env" in schema.required, entrypoint
        env = schema.properties["env"]
        assert env.get("enum") == ["dev", "prod"], (entrypoint, env)
        if "since" in schema.properties:
            assert {"type": "string", "format": "date-time"} in schema.properties["since"]["anyOf"]
