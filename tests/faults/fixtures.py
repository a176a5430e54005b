"""Fixtures shared by ``tests/faults`` and ``tests/badinput`` (imported by both conftests).

- ``secret_log`` (autouse): captures every log record of the test for the secret sweep;
- ``agol_secret``: an ArcGIS emulator whose user has the distinctive password;
- ``make_rig``: a factory wiring a small pipeline (``Rig``); each rig is swept for secrets
  (logs, errors, artifacts, every stored object, the log lines the Prefect API stored) when its test ends;
- ``module_rig_factory``: the same, living as long as a test module (one costly run, many checks).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
    assert_no_secret_in_api_logs,
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


class LogWatch:
    """Attach a ``LogCapture`` to the root logger, our own modules at DEBUG; ``close()`` undoes it."""

    def __init__(self) -> None:
        self.handler = LogCapture()
        self._ours = [logging.getLogger(name) for name in ("tasks", "flows", "blocks")]
        self._levels = [lg.level for lg in self._ours]
        logging.getLogger().addHandler(self.handler)
        for lg in self._ours:
            lg.setLevel(logging.DEBUG)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        for lg, level in zip(self._ours, self._levels, strict=True):
            lg.setLevel(level)


class RigFactory:
    """Builds ``Rig``s against one moto server and ArcGIS emulator; ``close()`` stops and sweeps them."""

    def __init__(self, tmp: Path, moto: Any, agol: Any, log: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.moto, self.agol, self.log, self.monkeypatch = tmp, moto, agol, log, monkeypatch
        self.made: list[tuple[Rig, list[Any]]] = []
        self.started = datetime.now(UTC)  # the API log lines of this factory's runs are stored after this

    def __call__(self, records: int = 60, containers: tuple[str, ...] = ("object_1",),
                 settings: dict[str, Any] | None = None, app_settings: dict[str, Any] | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, page_rows: int | None = None,
                 knack_app: dict[str, Any] | None = None,
                 layer_hook: Callable[[str, dict[str, Any]], None] | None = None) -> Rig:
        from emulators.knack import KnackEmulator
        from emulators.socrata import SocrataEmulator
        from tasks.knack.client import KnackClient

        number = len(self.made)
        app = knack_app or generated_app(records)
        knack = KnackEmulator(app, api_key=KNACK_API_KEY, rate_limit_per_second=None).start()
        socrata = SocrataEmulator(SOCRATA_USER, SOCRATA_PASSWORD, app_token=SOCRATA_APP_TOKEN).start()
        client = self.moto.client()
        bucket = re.sub(r"[^a-z0-9-]+", "-", f"rig-{number}-{self.tmp.name[-24:].lower()}").strip("-")
        client.create_bucket(Bucket=bucket)
        proxy = S3FaultProxy(self.moto.endpoint).start()
        config = write_rig_config(self.tmp / f"rig-{number}.yaml", bucket, containers,
                                  {"lock_ttl_seconds": 30, **(settings or {})}, app_settings or {}, overrides or {})
        provision(config, app, socrata, self.agol, layer_hook)
        save_blocks(knack, socrata, self.agol)
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        self.monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        if page_rows:
            original = KnackClient.iter_records

            def iter_records(self: KnackClient, *args: Any, **kwargs: Any) -> Any:
                kwargs["rows_per_page"] = page_rows
                return original(self, *args, **kwargs)

            self.monkeypatch.setattr(KnackClient, "iter_records", iter_records)
        rig = Rig(APP, ENV, config, knack, socrata, self.agol, client, bucket, app, proxy=proxy,
                  containers=containers, log=self.log)
        self.made.append((rig, [knack, socrata, proxy]))
        return rig

    def close(self) -> None:
        for rig, servers in self.made:
            for server in servers:
                server.stop()
            self.agol.set_faults()
            rig.assert_no_secrets(since=self.started)
        if self.made:
            assert_no_secret_in_api_logs(self.started, self.agol.issued_tokens())


@pytest.fixture(autouse=True)
def secret_log() -> Iterator[LogCapture]:
    """Every log line of the test (our modules at DEBUG, libraries as configured)."""
    watch = LogWatch()
    yield watch.handler
    watch.close()


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
             monkeypatch: pytest.MonkeyPatch) -> Iterator[RigFactory]:
    """Factory: ``make_rig(records=60, containers=("object_1",), settings={}, app_settings={},
    overrides={container: {...}}, page_rows=None, knack_app=None, layer_hook=None)`` → a wired ``Rig``;
    torn down and swept for secrets after the test."""
    factory = RigFactory(tmp_path, moto_server, agol_secret, secret_log, monkeypatch)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_rig_factory(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None, moto_server: Any,
                       agol_secret: Any) -> Iterator[RigFactory]:
    """``make_rig`` for a whole module, with its own log capture."""
    watch = LogWatch()
    with pytest.MonkeyPatch.context() as monkeypatch:
        factory = RigFactory(tmp_path_factory.mktemp("module-rig"), moto_server, agol_secret, watch.handler,
                             monkeypatch)
        try:
            yield factory
            factory.close()
        finally:
            watch.close()
