"""The drift audit's judgement, pure: a row's digest, the way a destination gives the row back.

A destination returns what it was sent in its own shapes: Socrata answers every number as a string and
every timestamp with milliseconds, ArcGIS returns dates as epoch milliseconds and geometry with its
spatial reference. ``row_digest`` reduces a row to a form both sides share (no empty values, numbers
and booleans as text, timestamps without zero milliseconds, coordinates to 7 decimals, keys sorted) and
hashes it: the digest of the payload a publish sent equals the digest of the row read back until
someone changes that row downstream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.0+)?(Z|[+-]\d\d:\d\d)?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
COORDINATE_PLACES = 7
MAX_EXPONENT = 40  # beyond this a "number" is text that looks like one (1e999999 would overflow Decimal)
_GEOMETRY_NOISE = frozenset({"spatialReference", "crs"})


def _number(value: Any) -> str:
    """A number's shortest plain text ("12.50" and 12.5 alike); text that only looks like one in exponent
    form ("5e1234567", a code) stays as it is."""
    try:
        number = Decimal(str(value))
        if not number.is_finite() or abs(number.adjusted()) > MAX_EXPONENT:
            return str(value).strip()
        text = format(number.normalize(), "f")
    except ArithmeticError:  # InvalidOperation, Overflow
        return str(value).strip()
    return "0" if text in ("-0", "0") else text


def canonical(value: Any, places: int | None = None) -> Any:
    """``value`` in the form a destination and the payload share; None for an empty value."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(round(value, places) if places is not None and isinstance(value, float) else value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return _number(text)
        if (match := _TIMESTAMP.fullmatch(text)) is not None:
            zone = match.group(2)
            return match.group(1) + ("" if zone in (None, "Z", "+00:00") else zone)
        if text in ("true", "false"):
            return text
        return text
    if isinstance(value, Mapping):
        out = {str(k): c for k, v in value.items() if k not in _GEOMETRY_NOISE
               and (c := canonical(v, COORDINATE_PLACES)) is not None}
        return out or None
    if isinstance(value, list | tuple):
        items = [canonical(v, COORDINATE_PLACES if places is None else places) for v in value]
        return items if any(i is not None for i in items) else None
    return str(value)


def row_digest(row: Mapping[str, Any], columns: Collection[str] | None = None,
               geometry: Any = None) -> str:
    """The digest of a row's ``columns`` (all of them when None), and of its geometry if it has one."""
    kept = {}
    for key, value in row.items():
        if columns is not None and key not in columns:
            continue
        if (shown := canonical(value)) is not None:
            kept[key] = shown
    body = {"row": kept, "geometry": canonical(geometry, COORDINATE_PLACES)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def drifted(recorded: Mapping[str, str], held: Mapping[str, str], stored: Collection[str]) -> list[str]:
    """Stored ids whose row at the destination is not what was last sent there: edited by hand, written
    by another run, or sent before digests were kept (no digest recorded). Rows missing there, and rows
    the store lacks, are the reconcile's other repairs."""
    return sorted(rid for rid, digest in held.items() if rid in stored and recorded.get(rid) != digest)


def rows_after(recorded: Mapping[str, str], sent: Mapping[str, str], stored: Collection[str]) -> dict[str, str]:
    """The digests the destination holds once a run that sent ``sent`` succeeded, for stored ids only."""
    after = {rid: digest for rid, digest in recorded.items() if rid in stored}
    after.update({rid: digest for rid, digest in sent.items() if rid in stored})
    return after
