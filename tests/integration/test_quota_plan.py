"""The ``sync-app`` fan-out checks the Knack quota plan before it starts any run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.pipeline import ROOT

pytestmark = pytest.mark.integration


def local_config(path: Path, store: Path, **app: int) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw.update({"store": "local", "local_store": str(store)})
    raw["apps"]["demo"].update(app)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_fan_out_that_would_break_the_quota_floor_starts_no_run(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    from flows.sync_app import sync_app
    from tasks.domain.errors import KnackServicesError

    # no deployments here, so only this fan-out's runs count: 4 containers never stored, a full refresh of
    # each is 1 page (assumed): 4 requests against a quota of 5 less a floor of 2 = 3
    config = local_config(tmp_path / "cfg.yaml", tmp_path / "store", daily_quota=5, quota_floor=2)
    sync_runs = FlowRunFilter(name=FlowRunFilterName(like_="sync-demo-"))  # earlier tests' runs count too
    with get_client(sync_client=True) as client:
        before = client.count_flow_runs(flow_run_filter=sync_runs)
    with pytest.raises(KnackServicesError, match=r"no run started: Knack account 'demo' \(demo\) would spend 4 "
                                                 r"requests a day of its 5 with a floor of 2; slow down demo/"):
        sync_app(app="demo", env="dev", full=True, config_path=str(config))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))
    with get_client(sync_client=True) as client:
        after = client.count_flow_runs(flow_run_filter=sync_runs)
        artifact = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            "knack-quota-plan-demo-dev"])), sort=ArtifactSort.CREATED_DESC, limit=1)  # this test's, not an earlier one
    assert after == before, f"{after - before} sync runs were started"
    assert artifact and "**Over by 1**" in artifact[0].data and "| demo | object_1 | 0 | 0 |" in artifact[0].data
