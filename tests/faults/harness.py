"""A small wired pipeline for the fault and bad-input suites, with distinctive secrets everywhere.

``build_rig`` wires a fresh generated Knack app, a Socrata emulator, the session's ArcGIS emulator and
a fresh moto bucket reached through ``S3FaultProxy``, saves the ``dev`` blocks, and returns a ``Rig``
with the checks every fault case ends with: store, Socrata and ArcGIS equal Knack, no duplicate ids,
bodies and published values from the latest Knack version, and no secret anywhere.
"""

from __future__ import annotations

import json
import logging
import uuid
from base64 import b64encode
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import yaml

from tasks.domain.agol import strip_html
from tasks.domain.config import load_config
from tests.faults.s3proxy import S3FaultProxy
from tests.fixtures.pipeline import ROOT, Pipeline

APP, ENV = "demo", "dev"
# Distinctive values: a test fails if any of them shows up in a log, error, artifact or stored file.
KNACK_API_KEY = "knackkey-Q7zX3v-SECRET-41f9"
SOCRATA_USER = "socrata-key-id"
SOCRATA_PASSWORD = "socpass-W2rT8m-SECRET-77ab"
SOCRATA_APP_TOKEN = "soctoken-K4pL0n-SECRET-c3d1"
AGOL_USER = "publisher"
AGOL_PASSWORD = "agolpass-V9yH5j-SECRET-e8f2"
AWS_SECRET = "awssecret-N6bC1x-SECRET-05de"
WRONG_SECRET = "wrongpass-Z5tG2q-SECRET-9a0b"  # a mistyped key or password must not leak either
SECRETS = (KNACK_API_KEY, SOCRATA_PASSWORD, SOCRATA_APP_TOKEN, AGOL_PASSWORD, AWS_SECRET, WRONG_SECRET)


USERS = (SOCRATA_USER, AGOL_USER, "testing")  # the user names a secret is paired with in Basic auth


def encoded_forms(secret: str, users: Iterable[str] = USERS) -> set[str]:
    """``secret`` as it could appear once encoded: URL-encoded (both ways), in a Basic auth header with any
    known user, and base64 at each of the three alignments inside a longer base64 text."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    forms |= {b64encode(f"{user}:{secret}".encode()).decode() for user in users}
    for shift in range(3):  # inside a longer base64 text: drop the quads the neighbours' bytes reach into
        encoded = b64encode(b"\0" * shift + raw).decode()
        forms.add(encoded[4 if shift else 0:len(encoded) - 4])
    return forms


def find_secrets(text: str, extra: Iterable[str] = ()) -> list[str]:
    """Every distinctive secret (and each of ``extra``, e.g. issued tokens) that occurs in ``text``, as it is
    or encoded (see ``encoded_forms``)."""
    return [s for s in (*SECRETS, *extra) if any(form in text for form in encoded_forms(s))]


class LogCapture(logging.Handler):
    """Every log record of the process, formatted with its traceback, for the secret sweep."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted must not break the run under test
            self.lines.append(f"{record.levelname} {record.name} <unformattable {record.msg!r}>")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Rig(Pipeline):
    """A wired pipeline plus the S3 proxy, the moto client behind it, and the convergence checks."""

    proxy: S3FaultProxy | None = None
    containers: tuple[str, ...] = ("object_1",)
    log: LogCapture | None = None
    texts: list[str] = field(default_factory=list)  # error messages and outputs seen, for the secret sweep

    @property
    def secrets(self) -> list[str]:
        return list(SECRETS)

    def run(self, container: str = "object_1", **kwargs: Any) -> Any:
        """One in-process ``sync`` run; returns its final state (failed runs do not raise)."""
        from flows.sync import sync

        params = {"app": self.app, "container": container, "env": self.env, "config_path": str(self.config_path)}
        state = sync(**(params | kwargs), return_state=True)
        self.texts.append(str(state.message))
        return state

    def ok(self, container: str = "object_1", **kwargs: Any) -> dict[str, Any]:
        """A run that must complete; returns its report."""
        state = self.run(container, **kwargs)
        assert state.is_completed(), f"run failed: {error_of(state)}"
        return state.result()

    # --- reads that bypass the proxy -------------------------------------------------------------
    def key(self, container: str, name: str) -> str:
        return f"{self.env}/{self.app}/_state/{container}/{name}.json"

    def state_doc(self, container: str, name: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(container, name))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def cursors(self, container: str = "object_1") -> dict[str, Any]:
        return {name: self.state_doc(container, f"cursor-{name}") for name in ("knack", "socrata", "agol")}

    def all_keys(self) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def stored_doc(self, container: str, record_id: str) -> dict[str, Any]:
        key = f"{self.env}/{self.app}/{container}/{record_id}.json"
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def socrata_rows(self, container: str = "object_1") -> list[dict[str, Any]]:
        return self.socrata.rows(self.container(container).socrata_resource_id)

    def agol_features(self, container: str = "object_1") -> list[dict[str, Any]]:
        cfg = self.container(container)
        return self.arcgis.features(cfg.service_id, cfg.layer_id)

    # --- the checks every case ends with ---------------------------------------------------------
    def assert_converged(self, container: str = "object_1", object_key: str | None = None,
                         not_yet_deleted: Iterable[str] = ()) -> None:
        """Store, Socrata and ArcGIS hold exactly Knack's ids, once each, with Knack's latest values.

        ``not_yet_deleted``: ids deleted in Knack that only the next full refresh will remove (Knack
        has no deletion feed); they may still be present, nothing else may.
        """
        cfg = self.container(container)
        knack = {r["id"]: r for r in self.knack.records(object_key or container)}
        allowed = set(not_yet_deleted)

        def check(where: str, ids: list[str]) -> None:
            assert_unique(ids, where)
            assert set(knack) <= set(ids) <= set(knack) | allowed, _diff(where, ids, knack)

        check("store", self.stored_ids(container))
        manifest = self.state_doc(container, "manifest")
        assert manifest is not None, "no manifest"
        check("manifest", list(manifest["records"]))
        if object_key is None:
            for rid in knack:
                assert self.stored_doc(container, rid) == knack[rid], f"stored body of {rid} is stale"
        if cfg.socrata_resource_id:
            rows = self.socrata_rows(container)
            check("Socrata", [r["id"] for r in rows])
            if object_key is None and container == "object_1":
                for row in rows:
                    if row["id"] in knack:
                        assert row.get("notes") == _notes(knack[row["id"]]), f"Socrata row {row['id']} is stale"
        if cfg.service_id:
            feats = self.agol_features(container)
            check("ArcGIS", [f["attributes"][cfg.upsert_matching_field] for f in feats])
            if object_key is None and container == "object_1":
                for feat in feats:
                    rid = feat["attributes"]["id"]
                    if rid in knack:
                        expected = strip_html(knack[rid]["field_4"]) if knack[rid]["field_4"] else None
                        assert feat["attributes"].get("notes") == expected, f"ArcGIS feature {rid} is stale"
        assert not self.locks(container), f"a lock was left behind: {self.locks(container)}"

    def rewrite_config(self, container: str, **changes: Any) -> None:
        """Change one container's entry in the config file (after the destinations were provisioned)."""
        raw = yaml.safe_load(self.config_path.read_text())
        raw["apps"][self.app]["containers"].setdefault(container, {}).update(changes)
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    def locks(self, container: str = "object_1") -> list[str]:
        prefix = f"{self.env}/{self.app}/_state/{container}/lock-"
        return [k for k in self.all_keys() if k.startswith(prefix)]

    def assert_no_secrets(self, *extra: str, since: datetime | None = None) -> None:
        """No secret, and no ArcGIS token issued so far, in the captured logs, the errors seen, the
        artifacts made since ``since`` (all when None) or any stored object."""
        tokens = self.arcgis.issued_tokens()
        texts = [*self.texts, *extra, self.log.text if self.log else ""]
        for text in texts:
            found = find_secrets(text, tokens)
            assert not found, f"a secret leaked: {found} in {text[:300]!r}"
        for key in self.all_keys():
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8", "replace")
            assert not find_secrets(body, tokens), f"a secret is stored in {key}"
        artifacts = read_artifacts(since)
        assert not find_secrets(artifacts, tokens), "a secret is in a Prefect artifact"


def _notes(record: dict[str, Any]) -> str | None:
    return record["field_4"] or None


def assert_unique(ids: Iterable[str], where: str) -> None:
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicate ids in {where}: {dupes[:5]}"


def _diff(where: str, got: Iterable[str], knack: Iterable[str]) -> str:
    got_set, want = set(got), set(knack)
    return f"{where} ≠ Knack: missing {sorted(want - got_set)[:5]}, extra {sorted(got_set - want)[:5]}"


def error_of(state: Any) -> str:
    """The exception message of a failed state (what the CLI prints)."""
    try:
        state.result()
    except Exception as exc:
        return str(exc)
    return str(state.message)


def read_artifacts(since: datetime | None = None) -> str:
    """Every artifact's data and description (those made or updated from ``since`` on, when given), as
    one text. Read newest first and stopped at the first one older than ``since``, so a sweep costs what
    its own test made, not the whole session's artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    texts: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(limit=200, offset=offset, sort=ArtifactSort.UPDATED_DESC)
            for a in page:
                stamp = a.updated or a.created
                if since is not None and stamp is not None and stamp < since:
                    return "\n".join(texts)
                texts.append(f"{a.key} {a.description} {a.data}")
            if len(page) < 200:
                return "\n".join(texts)
            offset += 200


def api_log_text(since: datetime) -> str:
    """Every log message the session's Prefect API holds from ``since`` on, once this process's queued
    lines are sent (other processes send theirs before they exit)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    log_filter = LogFilter(timestamp=LogFilterTimestamp(after_=since))
    lines: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_logs(log_filter=log_filter, limit=200, offset=offset)
            lines += [log.message for log in page]
            if len(page) < 200:
                return "\n".join(lines)
            offset += 200


def assert_no_secret_in_api_logs(since: datetime, tokens: Iterable[str] = ()) -> str:
    """The secret sweep of the Prefect API's logs: no secret in any line stored from ``since`` on.
    Needs nothing from other tests, so any test can run it, in any order; returns the text swept."""
    text = api_log_text(since)
    found = find_secrets(text, tokens)
    assert not found, f"a secret is in a log line the Prefect API stored: {found}"
    return text


def write_rig_config(path: Path, bucket: str, containers: Iterable[str], settings: dict[str, Any],
                     app_settings: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> Path:
    """The shipped demo app narrowed to ``containers``, with fresh dataset and item ids."""
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    app = raw["apps"][APP]
    suffix = uuid.uuid4().hex[:4]
    app["containers"] = {k: v for k, v in app["containers"].items() if k in containers}
    for key, body in app["containers"].items():
        if body.get("socrata_resource_id"):
            body["socrata_resource_id"] = f"{body['socrata_resource_id'][:4]}-{suffix}"
        if body.get("service_id"):
            body["service_id"] = uuid.uuid4().hex
        body.update(overrides.get(key, {}))
    app.update(app_settings)
    raw.update({"bucket": bucket, "store": "s3", **settings})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def provision(config_path: Path, knack_app: dict[str, Any], socrata: Any, arcgis: Any,
              layer_hook: Callable[[str, dict[str, Any]], None] | None = None) -> None:
    """Create the dataset and layer every configured container publishes to (``layer_hook(container,
    definition)`` may change a layer definition first)."""
    from emulators.provision import agol_definition, socrata_schema

    for cfg in load_config(config_path).app(APP).containers.values():
        if cfg.socrata_resource_id:
            socrata.create_dataset(cfg.socrata_resource_id, socrata_schema(knack_app["metadata"], cfg))
        if cfg.service_id:
            definition = agol_definition(knack_app["metadata"], cfg)
            if layer_hook is not None:
                layer_hook(cfg.key, definition)
            arcgis.create_layer(cfg.service_id, definition, layer_id=cfg.layer_id)


def save_blocks(knack: Any, socrata: Any, arcgis: Any) -> None:
    """The ``dev`` credential blocks, aimed at the emulators, holding the distinctive secrets."""
    from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials

    KnackCredentials(app_id=knack.app_id, api_key=knack.api_key, api_url=knack.api_url).save(
        f"knack-{APP}-{ENV}", overwrite=True)
    SocrataCredentials(domain=socrata.url, username=SOCRATA_USER, password=SOCRATA_PASSWORD,
                       app_token=SOCRATA_APP_TOKEN).save(f"socrata-{ENV}", overwrite=True)
    ArcGISCredentials(url=arcgis.portal_url, username=AGOL_USER, password=AGOL_PASSWORD,
                      ca_bundle=str(arcgis.ca_bundle)).save(f"agol-{ENV}", overwrite=True)
