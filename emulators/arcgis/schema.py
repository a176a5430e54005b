"""Layer definitions and the per-row checks a hosted feature layer makes on edits.

A definition is what ``ArcGISEmulator.create_layer`` receives: a name, ``kind`` ("layer" or "table"),
``geometry_type`` ("point" or "multipoint") and user fields. ``OBJECTID`` and ``GlobalID`` are
added here, as the hosting server does. The checks are deliberately strict (a string sent to a
double field, a bad date, out-of-range coordinates are per-row failures), so the publisher's
bugs surface in tests instead of in production.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

OID_FIELD = "OBJECTID"
GLOBALID_FIELD = "GlobalID"
GEOMETRY_TYPES = {"point": "esriGeometryPoint", "multipoint": "esriGeometryMultipoint"}
SQL_TYPES = {
    "esriFieldTypeOID": "INTEGER",
    "esriFieldTypeGlobalID": "TEXT",
    "esriFieldTypeGUID": "TEXT",
    "esriFieldTypeString": "TEXT",
    "esriFieldTypeSmallInteger": "INTEGER",
    "esriFieldTypeInteger": "INTEGER",
    "esriFieldTypeBigInteger": "INTEGER",
    "esriFieldTypeSingle": "REAL",
    "esriFieldTypeDouble": "REAL",
    "esriFieldTypeDate": "INTEGER",
}
_INT_RANGES = {
    "esriFieldTypeSmallInteger": (-(2**15), 2**15 - 1),
    "esriFieldTypeInteger": (-(2**31), 2**31 - 1),
    "esriFieldTypeBigInteger": (-(2**53), 2**53),
}
_NAME = re.compile(r"^(?!\d+$)[A-Za-z0-9_]{1,64}$")  # where clauses cannot name a field that starts with a digit


class RowError(Exception):
    """One feature rejected; becomes ``{"success": false, "error": {"code", "description"}}``."""

    def __init__(self, description: str, code: int = 1000) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Field:
    """One attribute column."""

    name: str
    type: str
    length: int | None = None
    nullable: bool = True
    editable: bool = True
    unique: bool = False
    alias: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "alias": self.alias or self.name,
                               "sqlType": "sqlTypeOther", "nullable": self.nullable,
                               "editable": self.editable, "domain": None, "defaultValue": None}
        if self.length is not None:
            out["length"] = self.length
        return out


@dataclass
class LayerDefinition:
    """A layer or table: its name, kind, geometry and fields (system fields first)."""

    name: str
    kind: str
    geometry_type: str | None
    fields: list[Field]
    max_record_count: int = 2000
    service_name: str | None = None
    _by_lower: dict[str, Field] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_lower = {f.name.lower(): f for f in self.fields}

    def field(self, name: str) -> Field | None:
        """The field called ``name``, case-insensitively (as the service matches names)."""
        return self._by_lower.get(name.lower())

    @property
    def user_fields(self) -> list[Field]:
        return [f for f in self.fields if f.name not in (OID_FIELD, GLOBALID_FIELD)]

    @property
    def esri_geometry_type(self) -> str | None:
        return GEOMETRY_TYPES.get(self.geometry_type or "")


def parse_definition(raw: dict[str, Any]) -> LayerDefinition:
    """Validate a definition dict and add the system fields; raises ValueError on a bad one."""
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 128:
        raise ValueError(f"layer name {name!r} must be 1 to 128 characters")
    kind = raw.get("kind", "layer")
    if kind not in ("layer", "table"):
        raise ValueError(f"kind must be 'layer' or 'table', not {kind!r}")
    geometry_type = raw.get("geometry_type", "point") if kind == "layer" else None
    if kind == "layer" and geometry_type not in GEOMETRY_TYPES:
        raise ValueError(f"geometry_type must be one of {sorted(GEOMETRY_TYPES)}, not {geometry_type!r}")
    max_records = int(raw.get("max_record_count", 2000))
    if max_records < 200:
        raise ValueError("max_record_count below 200 makes the arcgis client lose rows; use >= 200")
    fields = [Field(OID_FIELD, "esriFieldTypeOID", nullable=False, editable=False),
              Field(GLOBALID_FIELD, "esriFieldTypeGlobalID", length=38, nullable=False, editable=False)]
    seen = {OID_FIELD.lower(), GLOBALID_FIELD.lower()}
    for spec in raw.get("fields", []):
        fname = str(spec.get("name", ""))
        ftype = spec.get("type", "")
        if fname.lower() in seen:
            if fname.lower() in (OID_FIELD.lower(), GLOBALID_FIELD.lower()):
                continue  # system fields are always present
            raise ValueError(f"duplicate field name {fname!r}")
        if not _NAME.match(fname):
            raise ValueError(f"field name {fname!r} must be letters, digits and underscores")
        if ftype not in SQL_TYPES or ftype in ("esriFieldTypeOID", "esriFieldTypeGlobalID"):
            raise ValueError(f"field {fname!r}: unsupported type {ftype!r}")
        length = spec.get("length")
        if ftype == "esriFieldTypeString":
            length = int(length or 255)
        elif ftype == "esriFieldTypeDate":
            length = 8
        seen.add(fname.lower())
        fields.append(Field(fname, ftype, length, bool(spec.get("nullable", True)),
                            bool(spec.get("editable", True)), bool(spec.get("unique", False)),
                            spec.get("alias")))
    return LayerDefinition(name, kind, geometry_type, fields, max_records, raw.get("service_name"))


def check_value(fld: Field, value: Any) -> Any:
    """The value as stored, or RowError when the field's type or length refuses it."""
    if value is None:
        if not fld.nullable:
            raise RowError(f"Field '{fld.name}' cannot be null.")
        return None
    ftype = fld.type
    if ftype in ("esriFieldTypeString", "esriFieldTypeGUID"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RowError(f"Invalid value for field '{fld.name}': expected a string.")
        text = value if isinstance(value, str) else str(value)
        if fld.length is not None and len(text) > fld.length:
            raise RowError(f"String or binary data would be truncated: field '{fld.name}' has length "
                           f"{fld.length}, value has {len(text)} characters.")
        return text
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(f"Invalid value for field '{fld.name}' of type {ftype}: {type(value).__name__}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"Invalid value for field '{fld.name}': not a finite number.")
    if ftype in _INT_RANGES or ftype == "esriFieldTypeDate":
        if isinstance(value, float) and not value.is_integer():
            kind = "epoch milliseconds" if ftype == "esriFieldTypeDate" else "an integer"
            raise RowError(f"Invalid value for field '{fld.name}': expected {kind}.")
        value = int(value)
        low, high = _INT_RANGES.get(ftype, (-(2**53), 2**53))
        if not low <= value <= high:
            raise RowError(f"Value {value} is out of range for field '{fld.name}'.")
        return value
    return float(value)


def check_attributes(defn: LayerDefinition, attributes: Any) -> dict[str, Any]:
    """Clean editable attributes keyed by canonical field name; system fields are left to the caller."""
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise RowError("Feature attributes must be an object.")
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        fld = defn.field(str(key))
        if fld is None:
            raise RowError(f"Field '{key}' does not exist in '{defn.name}'.")
        if fld.name in (OID_FIELD, GLOBALID_FIELD):
            continue
        clean[fld.name] = check_value(fld, value)
    return clean


def _coordinate(value: Any, axis: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RowError(f"Invalid geometry: '{axis}' must be a number.")
    limit = 180 if axis == "x" else 90
    if not -limit <= value <= limit:
        raise RowError(f"Invalid geometry: {axis}={value} is outside the range of WGS84 (wkid 4326).")
    return float(value)


def check_geometry(defn: LayerDefinition, geometry: Any) -> dict[str, Any] | None:
    """The geometry as stored (no spatial reference), or RowError for a wrong kind or bad coordinates."""
    if geometry is None:
        return None
    if defn.kind == "table":
        raise RowError(f"'{defn.name}' is a table and cannot store geometry.")
    if not isinstance(geometry, dict):
        raise RowError("Invalid geometry: expected an object.")
    sref = geometry.get("spatialReference") or {}
    wkid = sref.get("latestWkid", sref.get("wkid", 4326)) if isinstance(sref, dict) else None
    if wkid != 4326:
        raise RowError(f"Unsupported spatial reference {sref!r}: send WGS84 (wkid 4326).")
    if defn.geometry_type == "point":
        if "points" in geometry:
            raise RowError("Invalid geometry: a multipoint was sent to a point layer.")
        if "x" not in geometry or "y" not in geometry:
            raise RowError("Invalid geometry: a point needs 'x' and 'y'.")
        if geometry["x"] is None and geometry["y"] is None:
            return None  # an empty point, as ArcGIS JSON writes it
        return {"x": _coordinate(geometry["x"], "x"), "y": _coordinate(geometry["y"], "y")}
    if "x" in geometry or "y" in geometry:
        raise RowError("Invalid geometry: a point was sent to a multipoint layer.")
    points = geometry.get("points")
    if not isinstance(points, list):
        raise RowError("Invalid geometry: a multipoint needs 'points'.")
    clean = []
    for point in points:
        if not isinstance(point, list | tuple) or len(point) < 2:
            raise RowError("Invalid geometry: each multipoint entry must be [x, y].")
        clean.append([_coordinate(point[0], "x"), _coordinate(point[1], "y")])
    return {"points": clean}
