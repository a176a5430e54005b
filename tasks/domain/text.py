"""Text both destinations build the same way: a formatted value as text, and SQL string literals.

Socrata and ArcGIS differ only in how a date reads as text and what happens to HTML, so each passes
those two rules in; the rest (booleans, addresses, lists) is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from tasks.domain.formatting import Address


def as_text(value: Any, *, date: Callable[[datetime], str],
            string: Callable[[str], str | None] = str) -> str | None:
    """A formatted value as text: booleans "true"/"false", an address its one line, a list its non-empty
    parts joined by ", " (None when nothing is left), a date through ``date``, a string through ``string``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Address):
        return value.text or None
    if isinstance(value, datetime):
        return date(value)
    if isinstance(value, list | tuple):
        parts = [t for t in (as_text(v, date=date, string=string) for v in value) if t]
        return ", ".join(parts) or None
    if isinstance(value, str):
        return string(value)
    return str(value)


def sql_string(text: str) -> str:
    """A SQL (and SoQL) string literal: single quotes, inner quotes doubled."""
    return "'" + str(text).replace("'", "''") + "'"


def where_in(field: str, values: Iterable[str]) -> str:
    """``field IN ('a','b')`` with quotes doubled, for id lookups."""
    return f"{field} IN ({','.join(sql_string(v) for v in values)})"
