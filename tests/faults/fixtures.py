"""Fixtures shared by ``tests/faults`` and ``tests/badinput`` (imported by both conftests).

- ``secret_log`` (autouse): captures every log record of the test for the secret sweep;
- ``agol_secret``: an ArcGIS emulator whose user has the distinctive password;
- ``make_rig``: a factory wiring a small pipeline (``Rig``); each rig is swept for secrets
  (logs, errors, artifacts, every stored object) when its test ends.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    AGOL_PASSWORD,
    AGOL_USER,
    APP,
    AWS_SECRET,
    ENV,
    KNACK_API_KEY,
    SOCRATA_APP_TOKEN,
    SOCRATA_PASSWORD,
    SOCRATA_USER,
    LogCapture,
    Rig,
    provision,
    save_blocks,
    write_rig_config,
)
from tests.faults.s3proxy import S3FaultProxy

_TEMPLATES: dict[tuple[int, int], dict[str, Any]] = {}


def generated_app(records: int, seed: int = 11) -> dict[str, Any]:
    """``generate_app(records, seed)``, generated once per session and copied per test."""
    from emulators.knack import generate_app

    if (records, seed) not in _TEMPLATES:
        _TEMPLATES[(records, seed)] = generate_app(records=records, seed=seed)
    return copy.deepcopy(_TEMPLATES[(records, seed)])


@pytest.fixture(autouse=True)
def secret_log() -> Iterator[LogCapture]:
    """Every log line of the test (our modules at DEBUG, libraries as configured)."""
    handler = LogCapture()
    root = logging.getLogger()
    ours = [logging.getLogger(name) for name in ("tasks", "flows", "blocks")]
    levels = [lg.level for lg in ours]
    root.addHandler(handler)
    for lg in ours:
        lg.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for lg, level in zip(ours, levels, strict=True):
        lg.setLevel(level)


@pytest.fixture(scope="session")
def agol_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An ArcGIS emulator whose publishing user has the distinctive password."""
    from emulators.arcgis import ArcGISEmulator

    emulator = ArcGISEmulator(tmp_path_factory.mktemp("agol-secret-certs"), username=AGOL_USER,
                              password=AGOL_PASSWORD)
    with emulator:
        yield emulator


@pytest.fixture
def make_rig(tmp_path: Path, prefect_harness: None, moto_server: Any, agol_secret: Any, secret_log: LogCapture,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    """Factory: ``make_rig(records=60, containers=("object_1",), settings={}, app_settings={},
    overrides={container: {...}}, page_rows=None)`` → a wired ``Rig``; torn down and swept after the test."""
    from emulators.knack import KnackEmulator
    from emulators.socrata import SocrataEmulator
    from tasks.knack_client import KnackClient

    made: list[tuple[Rig, list[Any]]] = []

    def make(records: int = 60, containers: tuple[str, ...] = ("object_1",), settings: dict[str, Any] | None = None,
             app_settings: dict[str, Any] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
             page_rows: int | None = None, knack_app: dict[str, Any] | None = None) -> Rig:
        app = knack_app or generated_app(records)
        knack = KnackEmulator(app, api_key=KNACK_API_KEY, rate_limit_per_second=None).start()
        socrata = SocrataEmulator(SOCRATA_USER, SOCRATA_PASSWORD, app_token=SOCRATA_APP_TOKEN).start()
        client = moto_server.client()
        bucket = f"faults-{len(made)}-{tmp_path.name[-20:].lower().replace('_', '-')}"
        client.create_bucket(Bucket=bucket)
        proxy = S3FaultProxy(moto_server.endpoint).start()
        config = write_rig_config(tmp_path / f"rig-{len(made)}.yaml", bucket, containers,
                                  {"lock_ttl_seconds": 30, **(settings or {})}, app_settings or {}, overrides or {})
        provision(config, app, socrata, agol_secret)
        save_blocks(knack, socrata, agol_secret)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        if page_rows:
            original = KnackClient.iter_records

            def iter_records(self: KnackClient, *args: Any, **kwargs: Any) -> Any:
                kwargs["rows_per_page"] = page_rows
                return original(self, *args, **kwargs)

            monkeypatch.setattr(KnackClient, "iter_records", iter_records)
        rig = Rig(APP, ENV, config, knack, socrata, agol_secret, client, bucket, app, proxy=proxy,
                  containers=containers, log=secret_log)
        made.append((rig, [knack, socrata, proxy]))
        return rig

    yield make
    for rig, servers in made:
        for server in servers:
            server.stop()
        agol_secret.set_faults()
        rig.assert_no_secrets()
