"""What a run will do, decided before it does anything: pure, no I/O, no Prefect.

- ``check_container``: the config against the app's own metadata, before anything is written;
- ``plan_since``: from which instant Knack is read, and whether the Knack cursor may move after;
- ``new_generation`` / ``ids_to_delete``: the generation a changing run writes, and what a full fetch deletes;
- ``plan_publish``: what one destination upserts and deletes, from its cursor, what it received and the manifest;
- ``with_missing`` / ``received_after``: a reconcile's repair of rows lost downstream, and what a destination
  holds once a run succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tasks.domain.config import ContainerConfig
from tasks.domain.errors import ConfigError
from tasks.domain.formatting import container_schema, destination_names
from tasks.domain.layout import Manifest


def check_container(metadata: dict[str, Any], app: str, cfg: ContainerConfig) -> None:
    """The config against the app itself: the container, its modified date field, its location fields,
    the field map and the derived column names. Checked before anything is written."""
    where = f"{app}/{cfg.key}"
    try:
        schema = container_schema(metadata, cfg.key)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}; fix the container key (or scene_id) in the config") from None
    fields = {f.key: f for f in schema.fields}
    dates = ", ".join(k for k, f in fields.items() if f.type == "date_time") or "none"
    modified = fields.get(cfg.modified_date_field_id)
    if modified is None or modified.type != "date_time":
        what = "is not a field of it" if modified is None else f"is a {modified.type} field"
        raise ConfigError(f"{where}: modified_date_field_id {cfg.modified_date_field_id} {what}; "
                          f"its date fields: {dates}")
    for key in cfg.location_fields:
        if key not in fields or fields[key].type != "address":
            addresses = ", ".join(k for k, f in fields.items() if f.type == "address") or "none"
            raise ConfigError(f"{where}: location_fields entry {key} is not an address field of it; "
                              f"its address fields: {addresses}")
    unknown = sorted(set(cfg.socrata_field_map) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: socrata_field_map names {', '.join(unknown)}, not fields of it")
    if cfg.destinations():
        try:
            destination_names(schema, cfg.socrata_field_map)
        except ConfigError as exc:  # two fields on one column; the message starts with the container key
            raise ConfigError(f"{app}/{exc}") from None


def plan_since(cursor: Mapping[str, Any] | None, since_override: datetime | None, full: bool
               ) -> tuple[datetime | None, bool]:
    """(fetch records modified at or after this instant, may the cursor advance afterwards).

    No cursor yet or ``full`` → everything. An explicit ``since`` later than the cursor would leave a
    gap, so such a run leaves the cursor where it is.
    """
    stored = datetime.fromisoformat(cursor["instant"]) if cursor else None
    if full or (stored is None and since_override is None):
        return None, True
    if since_override is not None:
        return since_override, stored is not None and since_override <= stored
    return stored, True


def new_generation(manifest: Manifest) -> int:
    """The generation number of a run that is about to change the store."""
    return manifest.generation + 1


def ids_to_delete(stored_ids: Iterable[str], seen_ids: set[str]) -> list[str]:
    """After a full fetch: ids the store holds that Knack no longer has."""
    return sorted(set(stored_ids) - seen_ids)


@dataclass(frozen=True)
class PublishPlan:
    """The work of one publish run."""

    destination: str
    full: bool
    cursor: int               # the generation published before this run
    target: int               # the generation this run publishes up to
    changed: list[str]        # ids to upsert
    deleted: list[str]        # ids to delete downstream (on a full refresh: filled in by the publisher)
    advance: bool             # may the cursor move when the run succeeds
    columns: Mapping[str, str] = field(default_factory=dict)  # field key → column, recorded in the cursor
    remapped: list[str] = field(default_factory=list)         # columns whose field changed since the cursor
    republish: bool = False   # every stored record goes again, whatever the destination received
    missing: list[str] = field(default_factory=list)          # stored ids the destination lacks (a reconcile)
    suspect: list[str] = field(default_factory=list)          # ids a run that lost its lock may have sent stale
    drifted: list[str] = field(default_factory=list)          # stored ids whose row there is not what was sent

    def summary(self) -> str:
        mode = "full refresh" if self.republish else "reconcile" if self.full else "incremental"
        again = f" (every row again: columns changed: {', '.join(self.remapped)})" if self.remapped else ""
        lost = f" ({len(self.missing)} of them missing there)" if self.missing else ""
        lost += f" ({len(self.suspect)} sent late by a run that lost its lock)" if self.suspect else ""
        lost += f" ({len(self.drifted)} of them changed there)" if self.drifted else ""
        return (f"{self.destination}: {mode} from generation {self.cursor} to {self.target}: "
                f"{len(self.changed)} to upsert{lost}, {len(self.deleted)} to delete{again}")


def remapped_columns(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """``field_4: notes → remarks`` for each field whose column changed (or that appeared or went)."""
    return [f"{key}: {before.get(key, '-')} → {after.get(key, '-')}" for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)]


def unreceived(manifest: Manifest, received: Mapping[str, str]) -> list[str]:
    """Stored ids whose content the destination never received: never sent, or sent with other bytes."""
    return [rid for rid, entry in manifest.records.items() if received.get(rid) != entry.digest]


def plan_publish(manifest: Manifest, cursor_doc: Mapping[str, Any] | None, destination: str, *,
                 full: bool, since: datetime | None = None, columns: Mapping[str, str] | None = None,
                 received: Mapping[str, str] | None = None, republish: bool = False) -> PublishPlan:
    """What one destination upserts and deletes.

    Incremental: the ids written and deleted since the destination's cursor. A full refresh is a
    *reconcile*: the ids whose stored content differs from what the destination last received
    (``received``: id → content hash; everything when nothing is recorded), then the deletes of what
    the store lacks (filled in by the publisher) and the ids lost downstream (``with_missing``).
    ``republish`` (and a first publish with nothing received) upserts every stored record.

    ``since`` narrows the upserts to records whose Knack modified instant is at or after it; such a
    run does not move the cursor (it may have left earlier changes out). When the field → column
    mapping (``columns``) differs from the one the cursor recorded (a field renamed in Knack), every
    row is upserted again: an incremental run would leave a column holding one field in old rows and
    another in new ones.
    """
    cursor = int(cursor_doc["generation"]) if cursor_doc else 0
    republish = republish or cursor_doc is None
    full = full or republish
    columns = dict(columns or {})
    recorded = (cursor_doc or {}).get("columns")
    remapped = (remapped_columns(recorded, columns)
                if isinstance(recorded, dict) and columns and cursor_doc is not None else [])
    if republish or remapped:
        changed = manifest.changed_since(0)
    elif full:
        changed = unreceived(manifest, received or {})
    else:
        changed = manifest.changed_since(cursor)
    if since is not None and not remapped:
        changed = [rid for rid in changed
                   if (modified := manifest.records[rid].modified) is None or datetime.fromisoformat(modified) >= since]
    deleted = [] if full else manifest.deleted_since(cursor)
    return PublishPlan(destination, full, cursor, manifest.generation, sorted(changed), sorted(deleted),
                       advance=since is None, columns=columns, remapped=remapped, republish=republish)


def with_missing(plan: PublishPlan, manifest: Manifest, held: set[str]) -> PublishPlan:
    """A reconcile also upserts the stored records the destination lacks (rows lost or deleted there by hand),
    even when it received their content before. ``held``: every id the destination holds."""
    missing = sorted(set(manifest.records) - held - set(plan.changed))
    if not missing:
        return plan
    return replace(plan, changed=sorted(set(plan.changed) | set(missing)), missing=missing)


def with_suspects(plan: PublishPlan, manifest: Manifest, suspects: set[str]) -> PublishPlan:
    """Also upsert the stored records that a run which lost its lock may have sent after its lease (a late
    write can carry older values than the run that took over sent)."""
    again = sorted((suspects & set(manifest.records)) - set(plan.changed))
    if not again:
        return plan
    return replace(plan, changed=sorted(set(plan.changed) | set(again)), suspect=again)


def received_after(received: Mapping[str, str], manifest: Manifest, sent: list[str]) -> dict[str, str]:
    """What the destination holds once a run that upserted ``sent`` (and its deletes) succeeded: id →
    content hash, for the ids the store still holds (a deleted record is forgotten)."""
    after = {rid: digest for rid, digest in received.items() if rid in manifest.records}
    after.update({rid: manifest.records[rid].digest for rid in sent if rid in manifest.records})
    return after
