"""Knack values → ArcGIS features for one hosted layer or table, and edit-result checks: pure, no I/O.

The layer's own field list decides each value's shape, because the service rejects a feature (per
row, with HTTP 200) for an unknown field or a value of the wrong type: fields the layer lacks are
dropped, HTML is stripped from text, lists are joined, booleans become "true"/"false" or 0/1, dates
become epoch milliseconds. Geometry comes from the container's ``location_fields``: a point for a
point layer, every located address for a multipoint layer, nothing for a table, and never (0, 0)
for an address without coordinates.

A point layer fed a list of addresses (a view pulling addresses from connected records) takes the
first located one, in ``location_fields`` order then list order: a deterministic choice that keeps
the record on the map instead of failing the run; use a multipoint layer to keep them all.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.domain.errors import AgolEditFailed, ConfigError
from tasks.domain.formatting import Address
from tasks.domain.text import as_text

MATCH_FIELD = "id"
STRING_TYPES = frozenset({"esriFieldTypeString", "esriFieldTypeGUID"})
INTEGER_TYPES = frozenset({"esriFieldTypeSmallInteger", "esriFieldTypeInteger", "esriFieldTypeBigInteger"})
DOUBLE_TYPES = frozenset({"esriFieldTypeSingle", "esriFieldTypeDouble"})
DATE_TYPE = "esriFieldTypeDate"
WRITABLE_TYPES = STRING_TYPES | INTEGER_TYPES | DOUBLE_TYPES | {DATE_TYPE}
GEOMETRY_KINDS = {"esriGeometryPoint": "point", "esriGeometryMultipoint": "multipoint"}
WGS84 = {"wkid": 4326}
ROLLED_BACK = "operation rolled back"

_BREAK = re.compile(r"<\s*(br\s*/?|/\s*(p|div|li|tr|h[1-6]))\s*>", re.IGNORECASE)
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class LayerField:
    """One field of the destination layer, as its properties describe it."""

    name: str
    type: str
    length: int | None = None
    editable: bool = True


@dataclass(frozen=True)
class LayerInfo:
    """What publishing needs from a layer's properties: name, fields, geometry kind, OID field."""

    name: str
    fields: Mapping[str, LayerField]  # by lower-case name: the service matches names case-insensitively
    geometry_type: str | None         # "point" | "multipoint" | None (a table)
    object_id_field: str = "OBJECTID"

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> LayerInfo:
        """Read ``layer.properties`` (a dict or the client's PropertyMap)."""
        fields = {}
        for raw in props.get("fields") or []:
            f = dict(raw)
            fields[str(f["name"]).lower()] = LayerField(str(f["name"]), str(f.get("type")), f.get("length"),
                                                         bool(f.get("editable", True)))
        kind = props.get("geometryType")
        if kind is not None and kind not in GEOMETRY_KINDS:
            raise ConfigError(f"ArcGIS layer {props.get('name')}: geometry type {kind} is not supported; "
                              "use a point or multipoint layer, or a table")
        oid = next((f.name for f in fields.values() if f.type == "esriFieldTypeOID"), None)
        return cls(str(props.get("name") or "?"), fields, GEOMETRY_KINDS.get(str(kind)) if kind else None,
                   str(props.get("objectIdField") or oid or "OBJECTID"))

    def field(self, name: str) -> LayerField | None:
        return self.fields.get(name.lower())

    def match_field(self, name: str) -> str:
        """The layer's spelling of the match field; ConfigError when it is missing or not text."""
        fld = self.field(name)
        if fld is None or fld.type not in STRING_TYPES:
            raise ConfigError(f"ArcGIS layer {self.name} needs a text field {name!r} (unique index) holding the "
                              f"Knack record id; found {'none' if fld is None else fld.type}")
        return fld.name


def strip_html(text: str) -> str | None:
    """Text without tags, entities unescaped; line breaks kept where the HTML broke lines."""
    plain = html.unescape(_TAG.sub("", _BREAK.sub("\n", text)))
    plain = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in plain.splitlines()))
    return plain.strip() or None


def _text(value: Any) -> str | None:
    """Text for a string field: HTML stripped, dates in ISO 8601."""
    return as_text(value, date=datetime.isoformat, string=strip_html)


def _number(value: Any, fld: LayerField, where: str) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").strip())
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: a {type(value).__name__} cannot go into a {fld.type} field")
    if fld.type in INTEGER_TYPES:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{where}: {value} is not a whole number")
        return int(value)
    return float(value)


def to_agol_value(value: Any, fld: LayerField, *, where: str = "") -> Any:
    """One formatted value shaped for a layer field; ValueError (naming ``where``) when it cannot fit."""
    if value is None:
        return None
    if fld.type in STRING_TYPES:
        text = _text(value)
        if text is not None and fld.length is not None and len(text) > fld.length:
            raise ValueError(f"{where}: the value has {len(text)} characters, the field holds {fld.length}")
        return text
    if fld.type == DATE_TYPE:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return int(value.timestamp() * 1000)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where}: a date field needs an aware datetime, got {type(value).__name__}")
    if isinstance(value, list | tuple | Address | datetime):
        raise ValueError(f"{where}: a {type(value).__name__} cannot go into a {fld.type} field")
    return _number(value, fld, where)


def _located(values: Iterable[Any]) -> list[Address]:
    found: list[Address] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        found.extend(a for a in items if isinstance(a, Address) and a.located)
    return found


def to_geometry(formatted: Mapping[str, Any], location_fields: Sequence[str],
                geometry_type: str | None) -> dict[str, Any] | None:
    """Point or multipoint (WGS84) from the location fields; None when nothing is located or for tables."""
    geometry_type = GEOMETRY_KINDS.get(geometry_type or "", geometry_type)  # "esriGeometryPoint" works too
    if geometry_type is None:
        return None
    located = _located(formatted.get(key) for key in location_fields)
    if not located:
        return None
    if geometry_type == "multipoint":
        return {"points": [[a.longitude, a.latitude] for a in located], "spatialReference": dict(WGS84)}
    first = located[0]
    return {"x": first.longitude, "y": first.latitude, "spatialReference": dict(WGS84)}


def dropped_fields(names: Mapping[str, str], layer_fields: Mapping[str, LayerField],
                   match_field: str = MATCH_FIELD) -> list[str]:
    """Destination names the layer cannot take (missing, read-only or of an unwritable type): log them once."""
    dropped = []
    for name in names.values():
        fld = layer_fields.get(name.lower())
        if fld is None or not fld.editable or fld.type not in WRITABLE_TYPES or name.lower() == match_field.lower():
            dropped.append(name)
    return dropped


def to_agol_feature(record_id: str, formatted: Mapping[str, Any], names: Mapping[str, str],
                    layer_fields: Mapping[str, LayerField], *, location_fields: Sequence[str] = (),
                    geometry_type: str | None, match_field: str = MATCH_FIELD,
                    layer: str = "?") -> dict[str, Any]:
    """One record as a feature: the record id in ``match_field``, each field the layer has, the geometry.

    Raises ``AgolEditFailed`` naming the record and field when a value cannot fit its field (a string
    longer than the field, text in a number field): truncating would publish wrong data silently.
    """
    match = layer_fields.get(match_field.lower())
    attributes: dict[str, Any] = {match.name if match else match_field: record_id}
    for key, value in formatted.items():
        name = names.get(key)
        fld = layer_fields.get(name.lower()) if name else None
        if fld is None or not fld.editable or fld.type not in WRITABLE_TYPES or fld is match:
            continue
        try:
            attributes[fld.name] = to_agol_value(value, fld, where=f"field {fld.name} (Knack {key})")
        except ValueError as exc:
            raise AgolEditFailed(layer, [record_id], f"record {record_id} cannot be published: {exc}") from None
    feature: dict[str, Any] = {"attributes": attributes}
    if geometry_type is not None:
        feature["geometry"] = to_geometry(formatted, location_fields, geometry_type)
    return feature


def _summary(failures: Sequence[tuple[str, str]], limit: int = 5) -> str:
    by_message: dict[str, list[str]] = {}
    for record_id, message in failures:
        by_message.setdefault(message, []).append(record_id)
    parts = [f"{message} ({', '.join(ids[:3])}{' …' if len(ids) > 3 else ''}: {len(ids)} feature"
             f"{'s' if len(ids) != 1 else ''})" for message, ids in list(by_message.items())[:limit]]
    if len(by_message) > limit:
        parts.append(f"+{len(by_message) - limit} more kinds of error")
    return "; ".join(parts)


def _envelope_text(error: Mapping[str, Any]) -> str:
    details = [str(d) for d in error.get("details") or [] if d]
    text = " ".join([str(error.get("message") or "error"), *details]).strip()
    return f"{text} (code {error.get('code')})"


def edit_failures(response: Any, ids: Mapping[str, Sequence[str]]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Successes per kind and (record id, message) per failed row; ``ids`` lists the record id of each
    edit sent, by kind (``adds``, ``updates``, ``deletes``), in sending order.

    Rows that failed only because the service rolled the batch back come after the rows that caused it.
    """
    everyone = [i for kind in ("adds", "updates", "deletes") for i in ids.get(kind, ())]
    if not isinstance(response, Mapping):
        return {}, [(i, f"no edit results (got {type(response).__name__})") for i in everyone]
    if "error" in response:
        message = _envelope_text(response["error"] or {})
        return {}, [(i, message) for i in everyone]
    counts: dict[str, int] = {}
    culprits: list[tuple[str, str]] = []
    rolled: list[tuple[str, str]] = []
    for kind, key, label in (("adds", "addResults", "added"), ("updates", "updateResults", "updated"),
                             ("deletes", "deleteResults", "deleted")):
        sent = list(ids.get(kind, ()))
        results = list(response.get(key) or [])
        if len(results) != len(sent):
            culprits.extend((i, f"the service answered {len(results)} {key} for {len(sent)} edits") for i in sent)
            continue
        counts[label] = 0
        for record_id, result in zip(sent, results, strict=True):
            if result.get("success"):
                counts[label] += 1
                continue
            error = result.get("error") or {}
            message = str(error.get("description") or error.get("message") or "failed without a reason")
            code = error.get("code")
            entry = (record_id, f"{message} (code {code})" if code is not None else message)
            (rolled if ROLLED_BACK in message.lower() else culprits).append(entry)
    return counts, culprits + rolled


def refusal(layer_name: str, failures: Sequence[tuple[str, str]]) -> AgolEditFailed:
    """One error naming every refused record id and the distinct service messages."""
    return AgolEditFailed(layer_name, list(dict.fromkeys(i for i, _ in failures)), _summary(failures))

