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


def _stored_keys(pipeline: Pipeline, bucket: str, prefix: str) -> list[str]:
    return sorted(item["Key"][len(prefix):-5] for page in pipeline.s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for item in page.get("Contents", []))


def test_a_sync_loads_the_s3_block_once_and_the_next_run_sees_it_change(pipeline: Pipeline,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step of a sync, each destination's included, asks which store to use; the block is looked up
    once in the Prefect API."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    import tasks.credentials
    from flows.sync import sync
    from tasks.credentials import choose_store

    loads: list[str] = []  # look-ups of the block in the Prefect API
    saved = tasks.credentials.block_saved

    def counted_lookup(block_type: str, name: str) -> bool:  # counts, then looks for real
        loads.append(name)
        return saved(block_type, name)

    monkeypatch.setattr(tasks.credentials, "block_saved", counted_lookup)
    block_bucket = f"{pipeline.bucket}-block"  # not the config's bucket: the records show which was used
    pipeline.s3.create_bucket(Bucket=block_bucket)
    creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1",
                           aws_client_parameters=AwsClientParameters(endpoint_url=os.environ["AWS_ENDPOINT_URL"]))
    S3Bucket(bucket_name=block_bucket, credentials=creds).save("s3-dev", overwrite=True)
    try:
        report = sync(app="demo", container="object_1", env="dev", config_path=str(pipeline.config_path))
        assert set(report["published"]) == {"socrata", "agol"}  # two destinations asked as well
        assert loads == ["s3-dev"]
        assert _stored_keys(pipeline, block_bucket, "dev/demo/object_1/") == pipeline.knack_ids("object_1")
        assert _stored_keys(pipeline, pipeline.bucket, "dev/demo/") == []
    finally:
        S3Bucket.delete("s3-dev")
    # the run is over: the next look finds the block gone and uses the config's bucket
    after = choose_store("dev", pipeline.bucket, "s3")
    assert loads == ["s3-dev", "s3-dev"]
    assert after.location is not None and after.location.bucket == pipeline.bucket
    assert after.location.source == "environment"
