"""Destination schemas that fit a configured container: a Socrata dataset and an ArcGIS layer.

Used by the demo, the tests and the benchmark to create, in the emulators, the datasets and layers a
data team would have made by hand for a real app: one column per published field, named by the same
rule the publishers use, with a type that fits the Knack field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.domain.config import ContainerConfig
from tasks.domain.formatting import NUMERIC, container_schema, destination_names

_SOCRATA_TYPES = {"boolean": "checkbox", "date_time": "calendar_date"}
_AGOL_TYPES = {"date_time": ("esriFieldTypeDate", None), "auto_increment": ("esriFieldTypeInteger", None)}


def _many_valued(metadata: Mapping[str, Any], container: str) -> set[str]:
    """Fields a view pulls from connected records (they arrive as arrays: multipoint locations)."""
    app = metadata.get("application", metadata)
    for scene in app.get("scenes") or []:
        for view in scene.get("views") or []:
            if view.get("key") == container:
                return {c["field"]["key"] for c in view.get("columns") or []
                        if isinstance(c.get("field"), dict) and c.get("connection")}
    return set()


def socrata_schema(metadata: Mapping[str, Any], cfg: ContainerConfig, name: str | None = None) -> dict[str, Any]:
    """A dataset schema (row identifier ``id``) with a column for every field the container publishes."""
    schema = container_schema(metadata, cfg.key)
    names = destination_names(schema, cfg.socrata_field_map)
    many = _many_valued(metadata, cfg.key)
    columns = [{"fieldName": "id", "name": "ID", "dataTypeName": "text"}]
    for field in schema.fields:
        if field.key not in names:
            continue
        if field.key in cfg.location_fields:
            kind = "multipoint" if field.key in many else "point"
        elif field.type in NUMERIC:
            kind = "number"
        else:
            kind = _SOCRATA_TYPES.get(field.type, "text")
        columns.append({"fieldName": names[field.key], "name": field.label, "dataTypeName": kind})
    if cfg.append_timestamp_column:
        columns.append({"fieldName": cfg.append_timestamp_column, "name": "Published At",
                        "dataTypeName": "calendar_date"})
    return {"name": name or f"{cfg.app} {cfg.key}", "row_identifier": "id", "columns": columns}


def agol_definition(metadata: Mapping[str, Any], cfg: ContainerConfig, name: str | None = None) -> dict[str, Any]:
    """A layer (or table) definition with a unique ``id`` and a field for every published Knack field."""
    schema = container_schema(metadata, cfg.key)
    names = destination_names(schema, cfg.socrata_field_map)
    many = _many_valued(metadata, cfg.key) & set(cfg.location_fields)
    fields: list[dict[str, Any]] = [{"name": cfg.upsert_matching_field, "type": "esriFieldTypeString",
                                     "length": 24, "unique": True}]
    for field in schema.fields:
        if field.key not in names or field.key in cfg.location_fields:
            continue
        esri, length = _AGOL_TYPES.get(field.type, ("esriFieldTypeDouble", None) if field.type in NUMERIC
                                       else ("esriFieldTypeString", 8000))
        entry: dict[str, Any] = {"name": names[field.key], "type": esri}
        if length:
            entry["length"] = length
        fields.append(entry)
    definition: dict[str, Any] = {"name": name or f"{cfg.app}_{cfg.key}", "kind": cfg.agol_kind, "fields": fields}
    if cfg.agol_kind == "layer":
        definition["geometry_type"] = "multipoint" if many else "point"
    return definition
