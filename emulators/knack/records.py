"""Assemble whole Knack records: metadata field order, computed fields, defaults, fresh ids."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from emulators.knack.fields import (
    BLANK,
    COMPUTED,
    EMPTY_CONNECTION,
    Pair,
    RenderContext,
    default_value,
    render,
)
from emulators.knack.formulas import concatenation, equation


def pairs_of(record: dict[str, Any], fields: list[dict[str, Any]]) -> dict[str, Pair]:
    """The stored record split back into one pair per field."""
    pairs: dict[str, Pair] = {}
    for field in fields:
        key = field["key"]
        if key in record:
            raw_key = key + "_raw"
            pairs[key] = Pair(record[key], record[raw_key]) if raw_key in record else Pair(record[key])
    return pairs


def _blank_for(field: dict[str, Any]) -> Pair:
    return EMPTY_CONNECTION if field.get("type") == "connection" else BLANK


class ObjectIds:
    """MongoDB-style ids: 8 hex digits of true-UTC creation seconds, random bits, then a counter."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._counter = rng.getrandbits(24)

    def new(self, created: datetime) -> str:
        self._counter = (self._counter + 1) % (1 << 24)
        return f"{int(created.timestamp()):08x}{self._rng.getrandbits(40):010x}{self._counter:06x}"


def build_record(record_id: str, fields: list[dict[str, Any]], values: dict[str, Any], ctx: RenderContext, *,
                 base: dict[str, Any] | None = None, now_local: datetime | None = None,
                 auto_number: int | None = None) -> dict[str, Any]:
    """A Knack-shaped record: ``base`` (an update) or defaults (a create) overlaid with ``values``.

    Values use the write-side formats of knack-api.md §2; computed fields (auto increment,
    formulas) ignore written values and are recalculated. ValueError names a bad field.
    """
    creating = base is None
    pairs = {} if creating else pairs_of(base, fields)
    for field in fields:
        key, kind = field["key"], field.get("type")
        if kind in COMPUTED:
            continue
        if key in values:
            pairs[key] = render(field, values[key], ctx)
        elif creating:
            fmt = field.get("format") or {}
            if kind == "date_time" and fmt.get("default_type") == "current" and now_local is not None:
                pairs[key] = render(field, now_local, ctx)
            else:
                default = default_value(field)
                pairs[key] = _blank_for(field) if default is None else render(field, default, ctx)
    for field in fields:
        key, kind = field["key"], field.get("type")
        if kind == "auto_increment":
            if creating or key not in pairs:
                number = auto_number if auto_number is not None else 1
                pairs[key] = Pair(number, number)
        elif kind in ("equation", "concatenation"):
            computed = equation(field, pairs) if kind == "equation" else concatenation(field, pairs)
            if computed is not None:
                pairs[key] = computed
    record: dict[str, Any] = {"id": record_id}
    for field in fields:
        key = field["key"]
        pair = pairs.get(key) or _blank_for(field)
        record[key] = pair.formatted
        if pair.has_raw:
            record[key + "_raw"] = pair.raw
    return record
