"""Which fields a view exposes (knack-api.md §7) and how a record looks through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One exposed field; ``via`` is the connection field when the field lives on a connected object."""

    key: str
    owner: str
    via: str | None = None
    outbound: bool = True  # via is a field of the view's object (else of the owner, pointing back)


@dataclass
class ViewInfo:
    """A view the emulator can serve records for."""

    scene: str
    key: str
    obj: str
    kind: str
    authenticated: bool
    columns: list[Column]
    sort: list[tuple[str, str]]
    criteria: tuple[str, list[dict[str, Any]]]
    depends_on: set[str] = field(default_factory=set)


def _field_keys(view: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(field key, connection key or None) in display order, per view type."""
    out: list[tuple[str, str | None]] = []
    kind = view.get("type")
    if kind == "form":
        for group in view.get("groups") or []:
            for column in group.get("columns") or []:
                for item in column.get("inputs") or []:
                    key = (item.get("field") or {}).get("key")
                    if key:
                        out.append((key, None))
        return out
    for column in view.get("columns") or []:
        if column.get("field"):  # table column; link/action columns have no field
            out.append((column["field"]["key"], (column.get("connection") or {}).get("key")))
        for group in column.get("groups") or []:  # details/list layout
            for inner in group.get("columns") or []:
                for item in inner if isinstance(inner, list) else [inner]:
                    if isinstance(item, dict) and str(item.get("key", "")).startswith("field_"):
                        out.append((item["key"], (item.get("connection") or {}).get("key")))
    return out


def resolve_views(app: dict[str, Any]) -> dict[tuple[str, str], ViewInfo]:
    """Every view with a source object, keyed by (scene key, view key)."""
    owner = {f["key"]: obj["key"] for obj in app.get("objects", []) for f in obj.get("fields", [])}
    fields = {f["key"]: f for obj in app.get("objects", []) for f in obj.get("fields", [])}
    views: dict[tuple[str, str], ViewInfo] = {}
    for scene in app.get("scenes", []):
        for view in scene.get("views", []):
            source = (view.get("source") or {}).get("object")
            if not source:
                continue
            columns: list[Column] = []
            seen: set[str] = set()
            for key, via in _field_keys(view):
                if key in seen or key not in owner:
                    continue
                seen.add(key)
                column = _column(key, via, source, owner, fields)
                if column is not None:
                    columns.append(column)
            raw_sort = (view.get("source") or {}).get("sort") or []
            sort = [(s["field"], str(s.get("order") or "asc")) for s in raw_sort if s.get("field") in owner]
            criteria = (view.get("source") or {}).get("criteria") or {}
            match = {"any": "or", "all": "and"}.get(str(criteria.get("match") or "and"), "and")
            info = ViewInfo(scene["key"], view["key"], source, str(view.get("type")),
                            bool(scene.get("authenticated")), columns, sort,
                            (match, list(criteria.get("rules") or [])))
            info.depends_on = {source} | {c.owner for c in columns}
            views[(scene["key"], view["key"])] = info
    return views


def _column(key: str, via: str | None, source: str, owner: dict[str, str],
            fields: dict[str, dict[str, Any]]) -> Column | None:
    home = owner[key]
    if home == source:
        return Column(key, home)

    def target(conn: str) -> str | None:
        return (fields.get(conn, {}).get("relationship") or {}).get("object")

    candidates = [via] if via else [k for k, f in fields.items() if f.get("type") == "connection"]
    for conn in candidates:
        if conn is None or conn not in owner:
            continue
        if owner[conn] == source and target(conn) == home:
            return Column(key, home, conn, outbound=True)
        if owner[conn] == home and target(conn) == source:
            return Column(key, home, conn, outbound=False)
    return None


def project(record: Record, view: ViewInfo, connected: Callable[[Column, Record], list[Record]]) -> Record:
    """``id`` plus the view's fields; connected fields give one value per connected record."""
    out: Record = {"id": record["id"]}
    for column in view.columns:
        key, raw_key = column.key, column.key + "_raw"
        if column.via is None:
            out[key] = record.get(key, "")
            if raw_key in record:
                out[raw_key] = record[raw_key]
            continue
        children = [c for c in connected(column, record) if c.get(key, "") != ""]
        out[key] = "<br />".join(f'<span class="{c["id"]}">{c[key]}</span>' for c in children)
        out[raw_key] = [c[raw_key] for c in children if raw_key in c]
    return out
