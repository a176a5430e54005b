"""A deterministic, realistic "Signal Operations" app: metadata plus N signals and their neighbours.

``generate_app(records=N, seed=S)`` always returns the same records for the same (N, S) and the
same metadata for every (N, S). Values are drawn as a user would type them and rendered through
the same code as the emulator's write routes, so every shape matches knack-api.md §6.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.knack import schema
from emulators.knack.dates import app_zone, to_local
from emulators.knack.fields import RenderContext, plain_text
from emulators.knack.records import ObjectIds, build_record

FIRST_CREATED = datetime(2019, 1, 7, 15, 0, tzinfo=UTC)
LAST_MODIFIED = datetime(2024, 6, 28, 22, 0, tzinfo=UTC)

_STREETS = ["Lamar Blvd", "Congress Ave", "Guadalupe St", "Burnet Rd", "Airport Blvd", "Cesar Chavez St",
            "Riverside Dr", "Oltorf St", "William Cannon Dr", "Slaughter Ln", "Parmer Ln", "Braker Ln",
            "Rundberg Ln", "MLK Jr Blvd", "Manor Rd", "Pleasant Valley Rd", "Barton Springs Rd", "Koenig Ln"]
_CROSS = ["1st St", "2nd St", "5th St", "7th St", "11th St", "15th St", "24th St", "38th St", "45th St",
          "51st St", "Anderson Ln", "Rutland Dr", "Stassney Ln", "Ben White Blvd", "Howard Ln"]
_FIRST = ["Ana", "Luis", "Maria", "James", "Priya", "Chen", "Sofia", "Marcus", "Elena", "David", "Aisha", "Tom"]
_MIDDLE = ["M", "J", "R", "", "", ""]
_LAST = ["Rivera", "Nguyen", "Okafor", "Smith", "Garcia", "Patel", "Kim", "Johnson", "Lopez", "Brown"]
_NOTES = ["Cabinet replaced after storm damage.", "Detection loops failing on the eastbound approach.",
          "Coordinate timing with the corridor plan.\nCheck again after school season.",
          "Pedestrian push button reported sticky.", "Battery backup installed."]
_HTML = ["<p><strong>Retimed</strong> for peak hours</p>", "<p>Closed for <em>construction</em></p>",
         "<ul><li>new controller</li><li>new heads</li></ul>", "<p><a href=\"https://example.org/p\">permit</a></p>"]
_ZIPS = ["78701", "78702", "78704", "78705", "78722", "78741", "78745", "78751", "78752", "78757"]
_SVG = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?><svg xmlns="http://www.w3.org/2000/svg" '
        'version="1.1" width="120" height="40"><path stroke="rgb(85, 84, 89)" fill="none" d="M 2 {a} c 10 -{b} '
        '20 {b} 30 0 l {c} 4"/></svg>')


def _context(app_id: str, identifiers: dict[str, dict[str, str]]) -> RenderContext:
    return RenderContext(tz=app_zone(schema.TIMEZONE), app_id=app_id,
                         identifier_of=lambda obj, rid: identifiers.get(obj, {}).get(rid))


def _instants(rng: random.Random, count: int) -> list[tuple[datetime, datetime]]:
    """(created, modified) true instants, creation increasing with the record number."""
    span = (LAST_MODIFIED - FIRST_CREATED).total_seconds() * 0.9
    out = []
    for i in range(count):
        created = FIRST_CREATED + timedelta(seconds=span * i / max(count, 1) + rng.uniform(0, 3600))
        created = created.replace(microsecond=0)
        if rng.random() < 0.3:
            modified = created
        else:
            room = (LAST_MODIFIED - created).total_seconds()
            modified = created + timedelta(seconds=int(rng.uniform(60, room)))
        out.append((created, modified))
    return out


def _latlong(rng: random.Random) -> dict[str, Any] | None:
    """A geocoded location; some with "" coordinates (geocoding failed), numeric strings, or missing."""
    roll = rng.random()
    if roll < 0.08:
        return None
    lat, lon = round(30.27 + rng.uniform(-0.15, 0.15), 6), round(-97.74 + rng.uniform(-0.15, 0.15), 6)
    place = {"city": "Austin", "state": "Texas", "country": "United States", "zip": rng.choice(_ZIPS)}
    if roll < 0.14:
        return {"latitude": "", "longitude": "", **place}
    if roll < 0.18:
        return {"latitude": str(lat), "longitude": str(lon), **place}
    return {"latitude": lat, "longitude": lon, **place}


def _street_address(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.25:
        return None
    address = {"street": f"{rng.randint(100, 9900)} {rng.choice(_STREETS)}", "street2": "", "city": "Austin",
               "state": "TX", "zip": rng.choice(_ZIPS)}
    if rng.random() < 0.3:
        address["street2"] = f"Suite {rng.randint(1, 400)}"
    return address


def _maybe(rng: random.Random, share: float, value: Any, blank: Any = "") -> Any:
    return value if rng.random() < share else blank


def _signal_values(rng: random.Random, number: int, modified: datetime, corridor_ids: list[str],
                   tz: Any) -> dict[str, Any]:
    start_local = to_local(modified, tz) - timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 900))
    window = None
    if rng.random() < 0.6:
        begin = start_local.replace(minute=rng.choice([0, 15, 30, 45]))
        window = {"date": begin.strftime("%m/%d/%Y"), "hours": begin.strftime("%I"),
                  "minutes": begin.strftime("%M"), "am_pm": begin.strftime("%p")}
        if rng.random() < 0.6:
            end = begin + timedelta(minutes=rng.choice([30, 60, 90, 240]))
            window["to"] = end.strftime("%m/%d/%Y %I:%M%p")
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    approaches = rng.sample(["North", "South", "East", "West"], rng.randint(1, 4))
    status = rng.choice(["Active", "Active", "Active", "Construction", "Pending", "Removed"])
    return {
        "field_2": f"{rng.choice(_STREETS)} & {rng.choice(_CROSS)}",
        "field_3": _maybe(rng, 0.9, f"SIG-{number:05d}"),
        "field_4": _maybe(rng, 0.5, rng.choice(_NOTES)),
        "field_5": _maybe(rng, 0.6, rng.choice(_HTML)),
        "field_6": rng.randint(0, 8),
        "field_7": _maybe(rng, 0.7, round(rng.uniform(1500, 250000), 2)),
        "field_8": _maybe(rng, 0.8, rng.randint(0, 5)),
        "field_11": rng.random() < 0.4,
        "field_12": _maybe(rng, 0.95, status),
        "field_13": _maybe(rng, 0.8, status.upper()),
        "field_14": approaches if rng.random() < 0.8 else rng.choice([[None], ""]),
        "field_15": _maybe(rng, 0.85, {"first": first, "middle": rng.choice(_MIDDLE), "last": last}),
        "field_16": _maybe(rng, 0.7, f"{first.lower()}.{last.lower()}@example.org"),
        "field_17": _maybe(rng, 0.6, f"512{rng.randint(2000000, 9999999)}"),
        "field_18": _maybe(rng, 0.4, f"https://cameras.example.org/feeds/{number}"),
        "field_19": _latlong(rng),
        "field_20": _street_address(rng),
        "field_21": [rng.choice(corridor_ids)] if corridor_ids and rng.random() < 0.85 else [],
        "field_22": _maybe(rng, 0.8, start_local),
        "field_23": window,
        "field_24": _maybe(rng, 0.7, start_local.date()),
        "field_25": _maybe(rng, 0.5, start_local.replace(hour=rng.choice([0, 6, 7, 12, 16, 17]))),
        "field_28": _maybe(rng, 0.2, {"id": "", "filename": f"timing_{number}.pdf", "size": rng.randint(10**4, 10**6)}),
        "field_29": _maybe(rng, 0.25, {"id": "", "filename": f"signal_{number}.jpg", "size": rng.randint(10**5, 10**7)}),
        "field_30": _maybe(rng, 0.3, f"https://images.example.org/signals/{number}.jpg"),
        "field_31": _maybe(rng, 0.15, {"base30": f"1W00{rng.getrandbits(32):x}",
                                       "svg": _SVG.format(a=rng.randint(5, 35), b=rng.randint(2, 9),
                                                          c=rng.randint(-9, 9))}),
    }


def _corridor_values(rng: random.Random, number: int) -> dict[str, Any]:
    return {"field_33": f"{rng.choice(_STREETS)} Corridor {number}",
            "field_34": rng.choice(["Central", "East", "North", "South", "West"]),
            "field_35": round(rng.uniform(0.5, 12), 2), "field_36": _latlong(rng),
            "field_37": _street_address(rng), "field_38": rng.random() < 0.9}


def _work_order_values(rng: random.Random, modified: datetime, signal_ids: list[str], tz: Any) -> dict[str, Any]:
    linked = rng.sample(signal_ids, min(len(signal_ids), rng.randint(1, 3))) if signal_ids else []
    day = (to_local(modified, tz) + timedelta(days=rng.randint(1, 30))).strftime("%m/%d/%Y")
    return {"field_42": linked, "field_43": rng.choice(["Inspection", "Installation", "Repair", "Retiming"]),
            "field_44": _maybe(rng, 0.5, rng.choice(_NOTES)),
            "field_45": {"date": day, "hours": "08", "minutes": "00", "am_pm": "AM", "to": f"{day} 11:30am"}}


def _generic_values(fields: list[dict[str, Any]], rng: random.Random, number: int, now_local: datetime,
                    ids_of: Callable[[str], list[str]]) -> dict[str, Any]:
    """Plausible values for any object (apps loaded from a file)."""
    values: dict[str, Any] = {}
    for field in fields:
        kind, key, fmt = field.get("type"), field["key"], field.get("format") or {}
        simple = {"short_text": f"{field.get('name', key)} {number}", "paragraph_text": rng.choice(_NOTES),
                  "rich_text": rng.choice(_HTML), "number": rng.randint(0, 100),
                  "currency": round(rng.uniform(1, 5000), 2), "rating": rng.randint(0, 5),
                  "boolean": rng.random() < 0.5, "email": f"user{number}@example.org",
                  "phone": f"512{rng.randint(2000000, 9999999)}", "link": f"https://example.org/{number}",
                  "date_time": now_local}
        if kind in simple:
            values[key] = simple[kind]
        elif kind == "multiple_choice" and fmt.get("options"):
            options = list(fmt["options"])
            values[key] = rng.sample(options, rng.randint(1, len(options))) if fmt.get("type") in (
                "multi", "checkboxes") else rng.choice(options)
        elif kind == "name":
            values[key] = {"first": rng.choice(_FIRST), "last": rng.choice(_LAST)}
        elif kind == "address":
            values[key] = _latlong(rng) if fmt.get("input") == "lat_long" else _street_address(rng)
        elif kind == "connection":
            targets = ids_of((field.get("relationship") or {}).get("object", ""))
            values[key] = [rng.choice(targets)] if targets else []
    return values


def _asset_ids(values: dict[str, Any], rng: random.Random, when: datetime) -> dict[str, Any]:
    for value in values.values():
        if isinstance(value, dict) and "filename" in value and not value.get("id"):
            value["id"] = f"{int(when.timestamp()):08x}{rng.getrandbits(64):016x}"
    return values


def sample_values(object_key: str, fields: list[dict[str, Any]], rng: random.Random, number: int,
                  now: datetime, tz: Any, ids_of: Callable[[str], list[str]]) -> dict[str, Any]:
    """Write-side values for one new record of ``object_key`` (the generated app's own, or generic)."""
    keys = [f["key"] for f in fields]
    if keys == _SCHEMA_KEYS.get(object_key):
        if object_key == schema.SIGNALS:
            values = _signal_values(rng, number, now, ids_of(schema.CORRIDORS), tz)
        elif object_key == schema.CORRIDORS:
            values = _corridor_values(rng, number)
        else:
            values = _work_order_values(rng, now, ids_of(schema.SIGNALS), tz)
    else:
        values = _generic_values(fields, rng, number, to_local(now, tz), ids_of)
    return _asset_ids(values, rng, now)


def _make(obj_fields: list[dict], ids: ObjectIds, rng: random.Random, count: int, ctx: RenderContext,
          modified_key: str, created_key: str | None,
          values_for: Callable[[int, datetime], dict[str, Any]]) -> list[dict[str, Any]]:
    records = []
    for index, (created, modified) in enumerate(_instants(rng, count)):
        values = _asset_ids(values_for(index + 1, modified), rng, created)
        values[modified_key] = to_local(modified, ctx.tz)
        if created_key:
            values[created_key] = to_local(created, ctx.tz)
        records.append(build_record(ids.new(created), obj_fields, values, ctx, auto_number=index + 1))
    return records


def generate_app(records: int = 500, seed: int = 1) -> dict[str, Any]:
    """``{"metadata": {"application": ...}, "records": {object_key: [record, ...]}}`` for N signals."""
    if records < 0:
        raise ValueError("records must be >= 0")
    rng = random.Random(f"knack-signal-operations:{seed}")
    meta = schema.metadata()
    fields = {obj["key"]: obj["fields"] for obj in meta["application"]["objects"]}
    ids = ObjectIds(rng)
    identifiers: dict[str, dict[str, str]] = {}
    ctx = _context(schema.APP_ID, identifiers)
    tz = ctx.tz

    corridors = _make(fields[schema.CORRIDORS], ids, rng, max(3, records // 20), ctx, schema.CORRIDORS_MODIFIED,
                      "field_40", lambda number, _modified: _corridor_values(rng, number))
    identifiers[schema.CORRIDORS] = {r["id"]: plain_text(r["field_33"]) for r in corridors}
    corridor_ids = [r["id"] for r in corridors]
    signals = _make(fields[schema.SIGNALS], ids, rng, records, ctx, schema.SIGNALS_MODIFIED, "field_26",
                    lambda number, modified: _signal_values(rng, number, modified, corridor_ids, tz))
    identifiers[schema.SIGNALS] = {r["id"]: plain_text(r["field_2"]) for r in signals}
    signal_ids = [r["id"] for r in signals]
    orders = _make(fields[schema.WORK_ORDERS], ids, rng, max(3, records // 10), ctx, schema.WORK_ORDERS_MODIFIED,
                   None, lambda _number, modified: _work_order_values(rng, modified, signal_ids, tz))
    return {"metadata": meta,
            "records": {schema.SIGNALS: signals, schema.CORRIDORS: corridors, schema.WORK_ORDERS: orders}}


_SCHEMA_KEYS = {obj["key"]: [f["key"] for f in obj["fields"]] for obj in schema.metadata()["application"]["objects"]}
