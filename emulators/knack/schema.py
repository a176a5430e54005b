"""The generated app's metadata: "Signal Operations", identical for every record count and seed.

Configs, tests and the benchmark name these keys, so changing one is a breaking change: update
``emulators/knack/README.md`` (which documents every key) in the same commit.
"""

from __future__ import annotations

import copy
from typing import Any

APP_ID = "5f1e2d3c4b5a697887a6b5c4"
TIMEZONE = "Central Time (US & Canada)"

# Field keys the rest of the project refers to.
SIGNALS, CORRIDORS, WORK_ORDERS = "object_1", "object_2", "object_3"
SIGNALS_MODIFIED, CORRIDORS_MODIFIED, WORK_ORDERS_MODIFIED = "field_27", "field_39", "field_46"
SIGNALS_LOCATION, CORRIDORS_LOCATION = "field_19", "field_36"
SIGNALS_VIEW = ("scene_1", "view_1")
CORRIDORS_VIEW = ("scene_2", "view_2")

_DATE = {"date_format": "mm/dd/yyyy", "time_format": "HH:MM am", "calendar": False,
         "default_type": "none", "time_type": "current", "default_time": ""}


def _field(obj: str, key: str, name: str, kind: str, fmt: dict | None = None, **extra: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"type": kind, "required": False, "unique": False, "user": False,
                             "conditional": False, "rules": None, "validation": None, "key": key,
                             "object_key": obj, "name": name}
    if fmt is not None:
        field["format"] = fmt
    field.update(extra)
    return field


def _choice(options: list[str], kind: str = "single") -> dict[str, Any]:
    return {"options": options, "type": kind, "sorting": "alphabetical", "blank": "Select...",
            "default": "kn-blank"}


def _connection(key: str, name: str, target: str, has: str) -> dict[str, Any]:
    # like the real fixture, connection fields carry no object_key
    return {"type": "connection", "required": False, "unique": False, "user": False, "conditional": False,
            "rules": [], "validation": [], "key": key, "name": name,
            "relationship": {"object": target, "has": has, "belongs_to": "many"}}


def _signals_fields() -> list[dict[str, Any]]:
    o = SIGNALS
    return [
        _field(o, "field_1", "Signal ID", "auto_increment"),
        _field(o, "field_2", "Location Name", "short_text", required=True, default=""),
        _field(o, "field_3", "ID", "short_text", unique=True, default=""),
        _field(o, "field_4", "Notes", "paragraph_text", default=""),
        _field(o, "field_5", "Description", "rich_text", default=""),
        _field(o, "field_6", "Lane Count", "number", {"mark_decimal": "none", "precision": "0", "rounding": "none",
                                                      "mark_thousands": "none", "format": "", "pre": "", "post": ""},
               default="0"),
        _field(o, "field_7", "Install Cost", "currency", {"format": "$"}),
        _field(o, "field_8", "Condition Rating", "rating", {"max": "5", "allow_half": False}),
        _field(o, "field_9", "Priority Score", "equation",
               {"equation_type": "numeric", "equation": "{field_6} * 1.5 + {field_8} / 3", "precision": "2",
                "mark_decimal": "none", "rounding": "none", "mark_thousands": "none", "format": "", "pre": "",
                "post": ""}),
        _field(o, "field_10", "Signal Label", "concatenation",
               {"equation_type": "text", "equation": "SIG-{field_1} {field_2}", "mark_decimal": "period"}),
        _field(o, "field_11", "Pedestrian Signal", "boolean",
               {"input": "dropdown", "required": False, "default": False, "format": "yes_no"}),
        _field(o, "field_12", "Status", "multiple_choice",
               _choice(["Active", "Construction", "Pending", "Removed"])),
        _field(o, "field_13", "STATUS", "short_text", default=""),
        _field(o, "field_14", "Approaches", "multiple_choice", _choice(["East", "North", "South", "West"], "multi")),
        _field(o, "field_15", "Engineer", "name", {"format": "Last, First Middle"}),
        _field(o, "field_16", "Contact Email", "email", {"text_format": "url"}),
        _field(o, "field_17", "Contact Phone", "phone", {"extension": False, "format": "(999) 999-9999"}),
        _field(o, "field_18", "Camera Feed", "link", {"target": "_blank", "text_format": "url"}),
        _field(o, "field_19", "Location", "address",
               {"input": "lat_long", "format": "US", "enable_geocoding": True, "enable_address_autocomplete": False}),
        _field(o, "field_20", "Mailing Address", "address",
               {"input": "address", "format": "US", "enable_geocoding": False, "enable_address_autocomplete": False}),
        _connection("field_21", "Corridor", CORRIDORS, "one"),
        _field(o, "field_22", "Date/Time - Start", "date_time", dict(_DATE)),
        _field(o, "field_23", "Work Window", "date_time", {**_DATE, "calendar": True}),
        _field(o, "field_24", "Install Date", "date_time", {**_DATE, "time_format": "Ignore Time"}),
        _field(o, "field_25", "Peak Start", "date_time", {**_DATE, "date_format": "Ignore Date"}),
        _field(o, "field_26", "Created", "date_time",
               {**_DATE, "time_format": "HH MM (military)", "default_type": "current"}),
        _field(o, "field_27", "Modified Date", "date_time", dict(_DATE)),
        _field(o, "field_28", "Timing Sheet", "file", {"secure": False}),
        _field(o, "field_29", "Photo", "image", {"thumbs": [], "source": "upload"}),
        _field(o, "field_30", "Camera Snapshot", "image", {"thumbs": [], "source": "url"}),
        _field(o, "field_31", "Inspector Signature", "signature"),
    ]


def _corridors_fields() -> list[dict[str, Any]]:
    o = CORRIDORS
    return [
        _field(o, "field_32", "Corridor ID", "auto_increment"),
        _field(o, "field_33", "Corridor Name", "short_text", required=True, unique=True, default=""),
        _field(o, "field_34", "District", "multiple_choice", _choice(["Central", "East", "North", "South", "West"])),
        _field(o, "field_35", "Length Miles", "number", {"precision": "2", "format": ""}, default="0"),
        _field(o, "field_36", "Midpoint", "address",
               {"input": "lat_long", "format": "US", "enable_geocoding": True, "enable_address_autocomplete": False}),
        _field(o, "field_37", "Office Address", "address",
               {"input": "address", "format": "US", "enable_geocoding": False, "enable_address_autocomplete": False}),
        _field(o, "field_38", "Active", "boolean",
               {"input": "dropdown", "required": False, "default": True, "format": "yes_no"}),
        _field(o, "field_39", "Modified Date", "date_time", dict(_DATE)),
        _field(o, "field_40", "Created", "date_time", {**_DATE, "default_type": "current"}),
    ]


def _work_order_fields() -> list[dict[str, Any]]:
    o = WORK_ORDERS
    return [
        _field(o, "field_41", "Work Order ID", "auto_increment"),
        _connection("field_42", "Signals", SIGNALS, "many"),
        _field(o, "field_43", "Work Type", "multiple_choice",
               _choice(["Inspection", "Installation", "Repair", "Retiming"])),
        _field(o, "field_44", "Comments", "paragraph_text", default=""),
        _field(o, "field_45", "Scheduled", "date_time", {**_DATE, "calendar": True}),
        _field(o, "field_46", "Modified Date", "date_time", dict(_DATE)),
        _field(o, "field_47", "Order Name", "concatenation",
               {"equation_type": "text", "equation": "WO-{field_41} {field_43}", "mark_decimal": "period"}),
    ]


def _object(key: str, name: str, singular: str, identifier: str, sort_field: str,
            fields: list[dict], inbound: list[dict], outbound: list[dict]) -> dict[str, Any]:
    return {"inflections": {"singular": singular, "plural": name}, "connections": {"inbound": inbound,
            "outbound": outbound}, "sort": {"field": sort_field, "order": "asc"}, "user": False,
            "status": "current", "tasks": [], "type": "StandardObject", "key": key, "name": name,
            "identifier": identifier, "fields": fields}


def _column(key: str, header: str, **extra: Any) -> dict[str, Any]:
    return {"header": header, "type": "field", "sortable": True, "field": {"key": key}, **extra}


def _table(key: str, name: str, obj: str, sort_field: str, columns: list[dict]) -> dict[str, Any]:
    return {"key": key, "name": name, "type": "table", "title": name, "rows_per_page": "25",
            "source": {"object": obj, "sort": [{"field": sort_field, "order": "asc"}],
                       "criteria": {"match": "any", "rules": [], "groups": []}, "limit": ""},
            "columns": columns, "links": [], "inputs": []}


def _scenes() -> list[dict[str, Any]]:
    signals_columns = [
        _column("field_1", "Signal ID"), _column("field_3", "ID"), _column("field_2", "Location Name"),
        _column("field_12", "Status"), _column("field_13", "STATUS"), _column("field_14", "Approaches"),
        _column("field_11", "Pedestrian Signal"), _column("field_19", "Location"),
        _column("field_21", "Corridor"), _column("field_22", "Date/Time - Start"),
        _column("field_27", "Modified Date"),
        _column("field_21", "Corridor"),  # listed twice, as real views sometimes do
        {"header": "details", "type": "link", "link_type": "scene", "scene": "signal-details"},
    ]
    corridor_columns = [
        _column("field_32", "Corridor ID"), _column("field_33", "Corridor Name"), _column("field_34", "District"),
        _column("field_36", "Midpoint"), _column("field_39", "Modified Date"),
        # a field of the connected signals: arrives as one value per signal (a multipoint)
        _column("field_19", "Signal Locations", connection={"key": "field_21"}),
    ]
    details = {"key": "view_3", "name": "signal details", "type": "details", "source": {"object": SIGNALS},
               "columns": [{"width": 100, "groups": [{"columns": [[{"key": "field_2", "name": "Location Name"},
                                                                   {"key": "field_19", "name": "Location"}]]}]}]}
    form = {"key": "view_4", "name": "edit signal", "type": "form", "source": {"object": SIGNALS},
            "groups": [{"columns": [{"inputs": [{"field": {"key": "field_12"}, "type": "multiple_choice"},
                                                {"field": {"key": "field_4"}, "type": "paragraph_text"}]}]}]}
    return [
        {"key": "scene_1", "slug": "signals-public", "name": "Signals", "authenticated": False, "parent": None,
         "views": [_table("view_1", "signals table", SIGNALS, "field_1", signals_columns)]},
        {"key": "scene_2", "slug": "corridors-public", "name": "Corridors", "authenticated": False, "parent": None,
         "views": [_table("view_2", "corridors table", CORRIDORS, "field_33", corridor_columns)]},
        {"key": "scene_3", "slug": "signal-details", "name": "Signal Details", "authenticated": False,
         "parent": "signals-public", "views": [details, form]},
    ]


def _metadata() -> dict[str, Any]:
    to_corridor = {"object": CORRIDORS, "key": "field_21", "name": "Corridor", "has": "one", "belongs_to": "many"}
    to_signals = {"object": SIGNALS, "key": "field_42", "name": "Signals", "has": "many", "belongs_to": "many"}
    objects = [
        _object(SIGNALS, "signals", "signal", "field_2", "field_1", _signals_fields(),
                [{**to_signals, "object": WORK_ORDERS}], [to_corridor]),
        _object(CORRIDORS, "corridors", "corridor", "field_33", "field_32", _corridors_fields(),
                [{**to_corridor, "object": SIGNALS}], []),
        _object(WORK_ORDERS, "work_orders", "work_order", "field_47", "field_41", _work_order_fields(),
                [], [to_signals]),
    ]
    return {"application": {
        "id": APP_ID, "name": "Signal Operations", "slug": "signal-operations",
        "description": "Traffic signal inventory generated for local runs.",
        "account": {"id": "5a0b1c2d3e4f5a6b7c8d9e0f", "slug": "cityops", "name": "cityops"},
        "settings": {"timezone": TIMEZONE, "timezone_offset": "-21600", "timezone_dst": "3600",
                     "cluster": "us-east"},
        "counts": {SIGNALS: 0, CORRIDORS: 0, WORK_ORDERS: 0, "total_entries": 0, "asset_size": 0},
        "home_scene": {"key": "scene_1", "slug": "signals-public"},
        "users": {"enabled": False, "registration": "closed", "scope": "scene"},
        "status": "active", "subdomain": "us-api",
        "objects": objects,
        "scenes": _scenes(),
    }}


_METADATA = _metadata()


def metadata() -> dict[str, Any]:
    """A fresh deep copy of the generated app's metadata (``{"application": ...}``)."""
    return copy.deepcopy(_METADATA)
