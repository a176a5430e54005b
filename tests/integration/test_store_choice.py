"""Which store a production run writes to: S3 whenever boto3's own credential chain finds credentials,
never a folder that dies with its container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.faults.harness import error_of
from tests.fixtures.pipeline import Pipeline

pytestmark = pytest.mark.integration


def _no_aws_environment(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # this machine has no instance role to ask for


def _prod_run(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: str) -> tuple:
    from flows.records_to_s3 import records_to_s3

    raw = yaml.safe_load(pipeline.config_path.read_text())
    raw.update({"store": store, "local_store": str(tmp_path / "local-store")})
    pipeline.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("KNACK_APP_ID", pipeline.knack.app_id)  # no knack-demo-prod block: the environment
    monkeypatch.setenv("KNACK_API_KEY", pipeline.knack.api_key)
    monkeypatch.setenv("KNACK_API_URL", pipeline.knack.api_url)
    state = records_to_s3(app="demo", container="object_1", env="prod", config_path=str(pipeline.config_path),
                          return_state=True)
    return state, tmp_path / "local-store"


def test_prod_auto_with_credentials_only_in_shared_files_writes_s3(pipeline: Pipeline, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = testing\n"
                                               "aws_secret_access_key = testing\n")
    (home / ".aws" / "config").write_text(f"[default]\nregion = us-east-1\nendpoint_url = {endpoint}\n")
    _no_aws_environment(monkeypatch, home)

    state, local = _prod_run(pipeline, monkeypatch, tmp_path, "auto")
    assert state.is_completed(), error_of(state)
    result = state.result()
    assert result.store.startswith(f"s3://{pipeline.bucket} ("), result.store
    assert "shared-credentials-file" in result.store, result.store
    prefix = "prod/demo/object_1/"
    stored = sorted(item["Key"][len(prefix):-5] for page in pipeline.s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.bucket, Prefix=prefix) for item in page.get("Contents", []))
    assert stored == pipeline.knack_ids("object_1")
    assert not local.exists() and not (tmp_path / ".data").exists()


def test_prod_auto_with_no_credentials_anywhere_refuses_a_local_folder(pipeline: Pipeline, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _no_aws_environment(monkeypatch, tmp_path / "empty-home")
    state, local = _prod_run(pipeline, monkeypatch, tmp_path, "auto")
    assert state.is_failed()
    assert "prod never falls back to a local folder" in error_of(state)
    assert not local.exists()
    assert pipeline.knack.counters()["requests"] == 0  # refused before Knack is asked for anything
