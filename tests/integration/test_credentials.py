"""Credential resolution: the saved block wins, the environment stands in, secrets never show."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials
from tasks.credentials import agol_credentials, knack_credentials, socrata_credentials
from tasks.domain.errors import CredentialsError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

SECRET = "s3cr3t-" + uuid.uuid4().hex


def test_block_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    app = f"app{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KNACK_APP_ID", "from-env")
    monkeypatch.setenv("KNACK_API_KEY", "env-key")
    assert knack_credentials(app, "dev").app_id == "from-env"  # no block yet: the environment
    KnackCredentials(app_id="from-block", api_key=SECRET).save(f"knack-{app}-dev", overwrite=True)
    creds = knack_credentials(app, "dev")
    assert creds.app_id == "from-block"
    assert creds.api_key.get_secret_value() == SECRET
    assert knack_credentials(app, "prod").app_id == "from-env"  # other env: no block


def test_missing_credentials_name_block_and_variables() -> None:
    with pytest.raises(CredentialsError) as err:
        knack_credentials("nowhere", "prod")
    message = str(err.value)
    assert "'knack-nowhere-prod'" in message and "KNACK_APP_ID" in message and "KNACK_API_KEY" in message
    with pytest.raises(CredentialsError, match="'socrata-prod'.*SOCRATA_PASSWORD"):
        socrata_credentials("prod")
    with pytest.raises(CredentialsError, match="'agol-prod'.*AGOL_USERNAME"):
        agol_credentials("prod")


def test_environment_fallback_for_each_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCRATA_DOMAIN", "http://127.0.0.1:9")
    monkeypatch.setenv("SOCRATA_USERNAME", "key-id")
    monkeypatch.setenv("SOCRATA_PASSWORD", SECRET)
    monkeypatch.setenv("AGOL_USERNAME", "pipeline")
    monkeypatch.setenv("AGOL_PASSWORD", SECRET)
    soc = socrata_credentials("prod")  # no socrata-prod / agol-prod blocks in the test database
    assert soc.domain == "http://127.0.0.1:9" and soc.password.get_secret_value() == SECRET
    agol = agol_credentials("prod")
    assert agol.url == "https://www.arcgis.com" and agol.username == "pipeline"


def test_secrets_never_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    blocks = [
        KnackCredentials(app_id="a" * 24, api_key=SECRET),
        SocrataCredentials(domain="data.example.gov", username="k", password=SECRET, app_token=SECRET),
        ArcGISCredentials(username="u", password=SECRET),
    ]
    logger = logging.getLogger("knack-services-test")
    with caplog.at_level(logging.INFO):
        for block in blocks:
            logger.info("using %s / %r", block, block)
            assert SECRET not in repr(block) and SECRET not in str(block)
            assert SECRET not in block.model_dump_json()
    assert SECRET not in caplog.text
    assert "**********" in caplog.text


def test_s3_store_from_block_then_environment_then_local(moto_server: object, s3_bucket: tuple,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from tasks.credentials import choose_store, s3_location

    client, bucket = s3_bucket
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws here
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # not on an instance: do not wait for its metadata
    assert s3_location("dev", "atd-knack-services", "auto") is None  # nothing found in dev: the local folder
    with pytest.raises(CredentialsError, match="prod never falls back to a local folder"):
        choose_store("prod", "atd-knack-services", "auto")
    with pytest.raises(CredentialsError, match="store: s3, but boto3's credential chain finds no AWS credentials"):
        choose_store("dev", "atd-knack-services", "s3")
    local = choose_store("prod", "atd-knack-services", "local")  # said explicitly: allowed, with a warning
    assert local.location is None and local.warning and "local folder" in local.warning
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    from_env = choose_store("prod", "atd-knack-services", "auto")
    assert from_env.location is not None and from_env.location.bucket == "atd-knack-services"
    assert "boto3's credential chain found credentials (env)" in from_env.reason and SECRET not in repr(from_env)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)

    creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key=SECRET, region_name="us-east-1",
                           aws_client_parameters=AwsClientParameters(endpoint_url=moto_server.endpoint))
    S3Bucket(bucket_name=bucket, credentials=creds).save("s3-prod", overwrite=True)
    try:
        location = s3_location("prod", "ignored-when-a-block-exists", "local")
        assert location is not None and location.bucket == bucket and location.source == "block s3-prod"
        s3 = location.client(max_pool_connections=8)
        s3.put_object(Bucket=bucket, Key="probe.json", Body=b"{}")
        assert client.get_object(Bucket=bucket, Key="probe.json")["Body"].read() == b"{}"
        assert s3.meta.config.max_pool_connections == 8
        assert SECRET not in repr(location)
    finally:
        S3Bucket.delete("s3-prod")


def test_a_run_remembers_the_s3_block_for_its_threads_and_subflows_only(moto_server: object, s3_bucket: tuple,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import contextvars
    import threading

    from prefect_aws import AwsCredentials, S3Bucket

    import tasks.credentials
    from tasks.credentials import choose_store, remembering_s3_block

    _, bucket = s3_bucket
    env = f"e{uuid.uuid4().hex[:6]}"  # a block name no other test saves
    loads: list[str] = []  # look-ups of the block in the Prefect API
    saved = tasks.credentials.block_saved

    def counted_lookup(block_type: str, name: str) -> bool:  # counts, then looks for real
        loads.append(name)
        return saved(block_type, name)

    def bucket_seen() -> str | None:
        location = choose_store(env, "the-config-bucket", "s3").location
        return location.bucket if location is not None else None

    def in_thread(fn: Callable[[list[str | None]], object]) -> str | None:
        seen: list[str | None] = []
        thread = threading.Thread(target=fn, args=(seen,))
        thread.start()
        thread.join()
        return seen[0]

    monkeypatch.setattr(tasks.credentials, "block_saved", counted_lookup)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    S3Bucket(bucket_name=bucket, credentials=AwsCredentials(aws_access_key_id="testing",
                                                            aws_secret_access_key="testing")).save(f"s3-{env}")
    try:
        with remembering_s3_block(env):
            assert [bucket_seen() for _ in range(3)] == [bucket] * 3
            with remembering_s3_block(env):  # a subflow of the run shares the run's look
                assert bucket_seen() == bucket
            ctx = contextvars.copy_context()  # a task or subflow thread starts in a copy of the run's context
            assert in_thread(lambda seen: seen.append(ctx.run(bucket_seen))) == bucket
            assert len(loads) == 1
            # a thread outside the run (another run in the same process) looks for itself
            assert in_thread(lambda seen: seen.append(bucket_seen())) == bucket
            assert len(loads) == 2
            S3Bucket.delete(f"s3-{env}")
            assert bucket_seen() == bucket  # the run keeps what it found at its start
            assert len(loads) == 2
        assert bucket_seen() == "the-config-bucket"  # the next run sees the block gone
        assert len(loads) == 3
    finally:
        with contextlib.suppress(Exception):
            S3Bucket.delete(f"s3-{env}")


def test_prefect_aws_is_imported_only_when_the_s3_block_is_saved(moto_server: object, s3_bucket: tuple) -> None:
    """Its import costs a run 0.4 s; a run on environment credentials never needs it. The block type's
    name the look-up uses is the class's own."""
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL
    from prefect_aws import AwsCredentials, S3Bucket

    from tasks.credentials import S3_BLOCK_TYPE

    assert S3Bucket.get_block_type_slug() == S3_BLOCK_TYPE
    _, bucket = s3_bucket
    env = f"e{uuid.uuid4().hex[:6]}"
    probe = ("import sys; from tasks.credentials import choose_store; "
             f"c = choose_store({env!r}, 'the-config-bucket', 's3'); "
             "print(c.location.bucket, 'prefect_aws' in sys.modules)")
    child_env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing"}

    def look() -> str:
        done = subprocess.run([sys.executable, "-c", probe], env=child_env, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2], timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert look() == "the-config-bucket False"
    S3Bucket(bucket_name=bucket, credentials=AwsCredentials(aws_access_key_id="testing",
                                                            aws_secret_access_key="testing")).save(f"s3-{env}")
    try:
        assert look() == f"{bucket} True"
    finally:
        S3Bucket.delete(f"s3-{env}")
