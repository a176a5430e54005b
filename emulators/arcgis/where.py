"""Translate the SQL-92 ``where`` subset a hosted feature layer accepts into safe SQLite.

Every token is checked: field names must exist in the layer (matched case-insensitively, emitted
quoted), literals are re-quoted, and only a fixed set of keywords, operators and functions pass.
Anything else is refused, so a clause can never reach SQLite unchecked. ``DATE '…'`` and
``TIMESTAMP '…'`` literals become epoch milliseconds, the way dates are stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .schema import LayerDefinition

KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "BETWEEN", "ESCAPE"}
FUNCTIONS = {"UPPER": "UPPER", "LOWER": "LOWER", "CHAR_LENGTH": "LENGTH", "TRIM": "TRIM"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)
      | (?P<op><=|>=|<>|!=|=|<|>|\(|\)|,|\+|-|\*|/)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class WhereError(ValueError):
    """The clause uses something outside the supported subset, or a field the layer lacks."""


def _date_literal(text: str) -> str:
    value = text[1:-1].replace("''", "'").strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WhereError(f"invalid date literal {text}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def to_sql(where: str | None, defn: LayerDefinition) -> str:
    """The clause as SQLite text, or WhereError. An empty clause means every row."""
    text = (where or "").strip()
    if not text:
        return "1=1"
    out: list[str] = []
    pos = 0
    pending_date = False
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise WhereError(f"unexpected text near {text[pos:pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        token = match.group(kind or "")
        if pending_date:
            if kind != "string":
                raise WhereError("DATE/TIMESTAMP must be followed by a quoted literal")
            out.append(_date_literal(token))
            pending_date = False
            continue
        if kind == "string" or kind == "number" or kind == "op":
            out.append("!=" if token == "<>" else token)
            continue
        upper = token.upper()
        if upper in KEYWORDS:
            out.append(upper)
        elif upper in ("DATE", "TIMESTAMP"):
            pending_date = True
        elif upper in FUNCTIONS:
            out.append(FUNCTIONS[upper])
        else:
            fld = defn.field(token)
            if fld is None:
                raise WhereError(f"field {token!r} does not exist")
            out.append(f'"{fld.name}"')
    if pending_date:
        raise WhereError("DATE/TIMESTAMP must be followed by a quoted literal")
    return " ".join(out)
