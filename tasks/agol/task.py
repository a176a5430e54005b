"""Prefect task: publish a container's changes from the store to its ArcGIS Online layer or table.

``AgolLayer`` is the ArcGIS side of the one publish driver (``tasks/publishing.py``): features are
shaped by ``tasks/domain/agol.py`` and sent by ``tasks/agol/client.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.agol.client import AgolTarget, delete_ids, list_features, list_ids, open_target, upsert_features
from tasks.credentials import agol_credentials
from tasks.domain.agol import WRITABLE_TYPES, dropped_fields, to_agol_feature
from tasks.domain.config import ContainerConfig, Settings
from tasks.domain.deadlines import request_deadlines
from tasks.domain.destinations import AgolCounts, Capabilities
from tasks.domain.drift import row_digest
from tasks.domain.errors import AgolEditFailed, ConfigError, UnpublishableRecords
from tasks.domain.results import PublishResult
from tasks.publishing import PublishContext, publish


class AgolLayer:
    """One container's layer or table, from its config; ``open`` connects to it for a run."""

    role = "agol"

    def __init__(self, app: str, cfg: ContainerConfig, env: str, settings: Settings) -> None:
        if cfg.service_id is None:
            raise ConfigError(f"{app}/{cfg.key} has no service_id")
        self.capabilities = self.capabilities_of(cfg)
        self.cfg, self.env = cfg, env
        self.service_id: str = cfg.service_id
        self.batch_size = settings.agol_chunk_size
        self.deadlines = request_deadlines(settings)

    @staticmethod
    def capabilities_of(cfg: ContainerConfig) -> Capabilities:
        """Every run may reconcile a layer and delete the features the store lacks."""
        return Capabilities("ArcGIS")

    def open(self, ctx: PublishContext) -> OpenAgolLayer:
        match = self.cfg.upsert_matching_field
        target = open_target(agol_credentials(self.env), self.service_id, self.cfg.layer_id, self.cfg.agol_kind,
                             match_field=match, deadlines=self.deadlines)
        attributes = {k: v for k, v in ctx.names.items() if k not in self.cfg.location_fields}  # those are geometry
        dropped = dropped_fields(attributes, target.info.fields, match)
        if dropped:
            get_run_logger().info("ArcGIS %s has no editable field for %s: not published", target.name,
                                  ", ".join(dropped))
        return OpenAgolLayer(self.cfg, ctx, target, f"ArcGIS {target.name}", match, self.batch_size)


@dataclass(repr=False)  # its client and credentials stay out of any repr
class OpenAgolLayer:
    """The layer or table connected for one run; features are matched by record id (``upsert_matching_field``)."""

    cfg: ContainerConfig
    ctx: PublishContext
    target: AgolTarget
    name: str   # "ArcGIS Signals"
    match: str  # the field holding the record id
    batch_size: int
    refused: list[tuple[str, AgolEditFailed]] = field(default_factory=list)  # records with a value it cannot take

    def to_payload(self, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        info = self.target.info
        try:
            return to_agol_feature(record_id, values, self.ctx.names, info.fields,
                                   location_fields=self.cfg.location_fields, geometry_type=info.geometry_type,
                                   match_field=self.match, layer=self.target.name)
        except AgolEditFailed as exc:  # publish the rest, then fail naming every such record
            self.refused.append((record_id, exc))
            return None

    def upsert(self, payloads: Iterator[dict[str, Any]]) -> AgolCounts:
        counts = upsert_features(self.target, payloads, match_field=self.match, chunk_size=self.batch_size)
        return AgolCounts(upserted=counts["features"], added=counts["added"], updated=counts["updated"])

    def ids(self) -> set[str]:
        return set(list_ids(self.target, self.match))

    def _audit_fields(self) -> list[str]:
        """The attributes a feature is sent with (``to_agol_feature``): what the drift audit compares."""
        fields = self.target.info.fields
        match = fields.get(self.match.lower())
        names = {fld.name for name in self.ctx.names.values() if (fld := fields.get(name.lower())) is not None
                 and fld.editable and fld.type in WRITABLE_TYPES and fld is not match}
        return [match.name if match else self.match, *sorted(names)]

    def digest(self, payload: dict[str, Any]) -> str:
        return row_digest(payload["attributes"], self._audit_fields(), payload.get("geometry"))

    def held_rows(self) -> dict[str, str]:
        fields = self._audit_fields()
        geometry = self.target.info.geometry_type is not None
        return {key: row_digest(attributes, fields, shape)
                for key, attributes, shape in list_features(self.target, fields, self.match, geometry)}

    def delete(self, ids: list[str]) -> int:
        return delete_ids(self.target, ids, self.match, self.batch_size) if ids else 0

    def left_out(self, unreadable: list[tuple[str, str]]) -> Exception | None:
        if unreadable:
            return UnpublishableRecords(f"ArcGIS layer {self.target.name}",
                                        unreadable + [(i, str(exc)) for i, exc in self.refused])
        if self.refused:
            return AgolEditFailed(self.target.name, [i for i, _ in self.refused],
                                  "; ".join(str(exc) for _, exc in self.refused[:5]))
        return None

    def outcome(self, result: PublishResult, cursor: int) -> str:
        return (f"{result.upserted} features upserted ({result.counts['added']} added, "
                f"{result.counts['updated']} updated), {result.deleted} deleted")


@task(name="publish-to-agol", cache_policy=NO_CACHE)
def publish_agol(app: str, cfg: ContainerConfig, env: str, settings: Settings, full: bool = False,
                 since: datetime | None = None, allow_mass_delete: bool = False,
                 republish: bool = False) -> PublishResult:
    """Upsert changed features by record id and delete deleted ones; a full refresh upserts everything,
    then deletes what the store no longer has (never truncate: the map is never empty)."""
    return publish(AgolLayer(app, cfg, env, settings), app, cfg, env, settings, full=full, since=since,
                   allow_mass_delete=allow_mass_delete, republish=republish)
