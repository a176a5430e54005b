"""Turn write-side field values into Knack's ``field_N`` / ``field_N_raw`` pairs (knack-api.md §6).

The generator and the write routes both go through ``render``, so a generated record and one
created over HTTP have exactly the same shapes. A value renders to a ``Pair``; ``BLANK`` is the
empty field (``""`` and no ``_raw`` key).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from emulators.knack import dates

ASSET_HOST = "https://api.knack.com/v1/applications"
IMAGE_HOST = "https://s3.amazonaws.com/assets.knackhq.com/assets"
COMPUTED = {"auto_increment", "equation", "concatenation", "sum", "average", "count", "min", "max"}
_MISSING = object()


@dataclass(frozen=True)
class Pair:
    """One field's formatted value and raw value (``raw is _MISSING``: no ``_raw`` key)."""

    formatted: Any
    raw: Any = _MISSING

    @property
    def has_raw(self) -> bool:
        return self.raw is not _MISSING


BLANK = Pair("")
EMPTY_CONNECTION = Pair("", [])


@dataclass
class RenderContext:
    """What rendering needs beyond the value: the app zone, its id, and connection lookups."""

    tz: ZoneInfo
    app_id: str
    identifier_of: Callable[[str, str], str | None]  # (object_key, record_id) -> display text


def is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(value: Any, key: str) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).replace(",", "").replace("$", ""))
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {value!r}") from None
    return int(number) if number.is_integer() else number


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{key}: expected yes/no, got {value!r}")


def _name(field: dict, value: Any) -> Pair:
    if isinstance(value, str):
        first, _, last = value.strip().partition(" ")
        value = {"first": first, "last": last}
    parts = {k: str(value.get(k) or "") for k in ("title", "first", "middle", "last")}
    raw = {k: v for k, v in parts.items() if v}
    pattern = str((field.get("format") or {}).get("format") or "First Last")
    text = re.sub(r"Title|First|Middle|Last", lambda m: parts[m.group(0).lower()], pattern)
    text = re.sub(r"\s+", " ", text).strip().strip(",").strip()
    return Pair(text, raw)


def _email(value: Any) -> Pair:
    value = {"email": value} if isinstance(value, str) else dict(value)
    email = str(value.get("email") or "")
    raw = {"email": email}
    if value.get("label"):
        raw["label"] = str(value["label"])
    return Pair(f'<a href="mailto:{email}">{raw.get("label", email)}</a>', raw)


def _phone(value: Any) -> Pair:
    text = (value.get("full") or value.get("formatted") or "") if isinstance(value, dict) else str(value)
    digits = re.sub(r"\D", "", str(text))
    if len(digits) == 10:
        formatted = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        return Pair(formatted, {"area": digits[:3], "number": digits[3:], "full": digits, "formatted": formatted})
    return Pair(digits, {"area": "", "number": digits, "full": digits, "formatted": digits})


def _link(value: Any) -> Pair:
    value = {"url": value} if isinstance(value, str) else dict(value)
    raw = {"url": str(value.get("url") or "")}
    if value.get("label"):
        raw["label"] = str(value["label"])
    return Pair(f'<a href="{raw["url"]}">{raw.get("label", raw["url"])}</a>', raw)


_LATLONG_ORDER = ("latitude", "longitude", "street", "street2", "city", "state", "country", "zip")
_STREET_ORDER = ("street", "street2", "city", "state", "zip", "country", "latitude", "longitude")


def _address(field: dict, value: Any) -> Pair:
    if not isinstance(value, dict):
        raise ValueError(f"{field['key']}: an address must be an object, got {value!r}")
    fmt = field.get("format") or {}
    order = _LATLONG_ORDER if fmt.get("input") == "lat_long" else _STREET_ORDER
    raw = {k: value[k] for k in order if k in value}
    if all(v in ("", None) for v in raw.values()):
        return BLANK
    lines = [str(raw[k]) for k in ("street", "street2") if raw.get(k)]
    city = raw.get("city") or ""
    lines.append(f"{city + ', ' if city else ''}{raw.get('state') or ''} {raw.get('zip') or ''}")
    if fmt.get("format") == "international_country" and raw.get("country"):
        lines.append(str(raw["country"]))
    return Pair("<br />".join(lines), raw)


def _asset(field: dict, value: Any, ctx: RenderContext, kind: str) -> Pair:
    if isinstance(value, str):
        value = {"id": value, "filename": f"{value}.{'jpg' if kind == 'image' else 'bin'}"}
    asset_id, filename = str(value["id"]), str(value.get("filename") or "upload")
    if kind == "image":
        url = f"{IMAGE_HOST}/{ctx.app_id}/{asset_id}/original/{filename}"
        thumb = f"{IMAGE_HOST}/{ctx.app_id}/{asset_id}/thumb/{filename}"
        formatted = f'<img src="{url}" />'
    else:
        url = f"{ASSET_HOST}/{ctx.app_id}/download/asset/{asset_id}/{filename}"
        thumb = ""
        formatted = (f'<a class="kn-view-asset" data-field-key="{field["key"]}" data-asset-id="{asset_id}" '
                     f'data-file-name="{filename}" href="{url}">{filename}</a>')
    raw = {"id": asset_id, "application_id": ctx.app_id, "s3": True, "type": kind, "filename": filename,
           "url": url, "thumb_url": thumb, "size": int(value.get("size") or 0), "field_key": field["key"]}
    return Pair(formatted, raw)


def _signature(value: Any) -> Pair:
    svg = str(value.get("svg") or "")
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Pair(f'<img src="data:image/svg+xml;base64,{encoded}" />',
                {"base30": str(value.get("base30") or ""), "svg": svg})


def _connection(field: dict, value: Any, ctx: RenderContext) -> Pair:
    items = value if isinstance(value, list) else [value]
    target = (field.get("relationship") or {}).get("object", "")
    raw = []
    for item in items:
        record_id = str(item.get("id") if isinstance(item, dict) else item)
        identifier = ctx.identifier_of(target, record_id)
        if identifier is None:
            raise ValueError(f"{field['key']}: no record {record_id} in {target}")
        raw.append({"id": record_id, "identifier": identifier})
    if not raw:
        return EMPTY_CONNECTION
    return Pair("<br />".join(f'<span class="{c["id"]}">{c["identifier"]}</span>' for c in raw), raw)


def _multiple_choice(field: dict, value: Any) -> Pair:
    if isinstance(value, list):
        if value == [None]:
            return Pair("", [None])  # how Knack sometimes stores a cleared multi-select
        items = [str(v) for v in value if v not in (None, "")]
        return Pair(", ".join(items), items) if items else BLANK
    return Pair(str(value), str(value))


def _text(field: dict, value: Any, ctx: RenderContext) -> Pair:
    text = str(value)
    return Pair(text, text)


def _plain_number(field: dict, value: Any, ctx: RenderContext) -> Pair:
    number = _number(value, field["key"])
    return Pair(number, number)


def _currency(field: dict, value: Any, ctx: RenderContext) -> Pair:
    number = float(_number(value, field["key"]))
    return Pair(f"${number:,.2f}", f"{number:.2f}")


def _rating(field: dict, value: Any, ctx: RenderContext) -> Pair:
    number = _number(value, field["key"])
    return Pair(f"{float(number):.2f}", number)


def _yes_no(field: dict, value: Any, ctx: RenderContext) -> Pair:
    flag = _boolean(value, field["key"])
    return Pair("Yes" if flag else "No", flag)


def _date_time(field: dict, value: Any, ctx: RenderContext) -> Pair:
    parsed = dates.parse_date_input(value, ctx.tz)
    if parsed is None:
        return BLANK
    formatted, raw = dates.render_date(parsed[0], parsed[1], field.get("format"))
    return Pair(formatted, raw)


def _image(field: dict, value: Any, ctx: RenderContext) -> Pair:
    if (field.get("format") or {}).get("source") == "url":
        return Pair(f'<img src="{value}" />', str(value))
    return _asset(field, value, ctx, "image")


def _other(field: dict, value: Any, ctx: RenderContext) -> Pair:
    if isinstance(value, list):
        return Pair(", ".join(str(v) for v in value), value)
    return Pair(value if isinstance(value, str | int | float) else str(value), value)


_RENDERERS: dict[str, Callable[[dict, Any, RenderContext], Pair]] = {
    **dict.fromkeys(("short_text", "paragraph_text", "rich_text", "concatenation", "password"), _text),
    **dict.fromkeys(("number", "auto_increment", "sum", "average", "count", "min", "max"), _plain_number),
    "currency": _currency, "rating": _rating, "boolean": _yes_no, "date_time": _date_time, "image": _image,
    "multiple_choice": lambda field, value, ctx: _multiple_choice(field, value),
    "name": lambda field, value, ctx: _name(field, value),
    "email": lambda field, value, ctx: _email(value),
    "phone": lambda field, value, ctx: _phone(value),
    "link": lambda field, value, ctx: _link(value),
    "address": lambda field, value, ctx: _address(field, value),
    "connection": _connection,
    "file": lambda field, value, ctx: _asset(field, value, ctx, "file"),
    "signature": lambda field, value, ctx: _signature(value),
}


def render(field: dict, value: Any, ctx: RenderContext) -> Pair:
    """The pair for one write-side value of ``field``; ValueError names the field when it is bad."""
    kind = field.get("type")
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY_CONNECTION if kind == "connection" else BLANK
    if kind == "multiple_choice" and value == [None]:
        return Pair("", [None])
    return _RENDERERS.get(kind, _other)(field, value, ctx)


_TAGS = re.compile(r"<[^>]+>")


def plain_text(formatted: Any) -> str:
    """A formatted value without HTML tags (what a formula or an identifier shows)."""
    return _TAGS.sub("", str(formatted)) if isinstance(formatted, str) else str(formatted)


def numeric_value(pair: Pair | None) -> float:
    """A field's value as a number for formulas and comparisons; blank counts as 0."""
    if pair is None or not pair.has_raw:
        return 0.0
    try:
        return float(str(pair.raw).replace(",", ""))
    except ValueError:
        return 0.0


def default_value(field: dict) -> Any:
    """The value a new record gets when the writer leaves ``field`` out (None: stays blank)."""
    kind, fmt = field.get("type"), field.get("format") or {}
    if kind == "boolean":
        return bool(fmt.get("default", False))
    if kind == "number" and str(field.get("default", "")).strip() not in ("", "None"):
        return field["default"]
    if kind == "multiple_choice" and fmt.get("default") not in (None, "", "kn-blank"):
        return fmt["default"]
    return None
