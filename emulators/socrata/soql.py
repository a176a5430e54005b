"""The part of SoQL the emulator answers: ``$where``, ``$order`` and ``$select``.

``$where`` takes comparisons of a column with a literal (``= != <> < <= > >=``), ``IS [NOT] NULL``,
``[NOT] IN (...)``, ``[NOT] BETWEEN a AND b``, ``AND``, ``OR``, ``NOT`` and parentheses, with SQL's
three-valued logic (a comparison with a null cell is unknown, so the row is not returned). Literals
are quoted strings (``''`` escapes a quote), numbers, ``true`` and ``false``. Anything else is a 400
``query.compiler.malformed``, so a query the emulator would silently misread never passes a test.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .errors import SodaError, malformed_query
from .values import orderable, parse_literal

Row = dict[str, Any]
Predicate = Callable[[Row], "bool | None"]

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<name>`[^`]+`|:?@?[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN", "TRUE", "FALSE", "BETWEEN"}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<>": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise malformed_query(f"Could not parse SoQL near: {text[pos:pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "str":
            tokens.append(("lit", raw[1:-1].replace("''", "'")))
        elif kind == "num":
            tokens.append(("lit", Decimal(raw)))
        elif kind == "name" and raw.upper() in _KEYWORDS:
            word = raw.upper()
            tokens.append(("lit", word == "TRUE") if word in ("TRUE", "FALSE") else ("kw", word))
        elif kind == "name":
            tokens.append(("name", raw.strip("`")))
        else:
            tokens.append((kind, raw))
    return tokens


class _WhereParser:
    def __init__(self, text: str, types: dict[str, str]) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.types = types

    def peek(self, kind: str, value: Any = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        tok_kind, tok_value = self.tokens[self.pos]
        return tok_kind == kind and (value is None or tok_value == value)

    def accept(self, kind: str, value: Any = None) -> bool:
        """Consume the next token when it matches."""
        if self.peek(kind, value):
            self.pos += 1
            return True
        return False

    def take(self, kind: str, value: Any = None) -> Any:
        if not self.peek(kind, value):
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of query"
            raise malformed_query(f"Expected {value or kind} in $where, found {found!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.pos != len(self.tokens):
            raise malformed_query(f"Unexpected {self.tokens[self.pos][1]!r} in $where")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek("kw", "OR"):
            self.pos += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else _any_of(parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek("kw", "AND"):
            self.pos += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else _all_of(parts)

    def negation(self) -> Predicate:
        if self.peek("kw", "NOT"):
            self.pos += 1
            return _negate(self.negation())
        if self.peek("punct", "("):
            self.pos += 1
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def literal(self, field: str) -> Any:
        value = self.take("lit")
        try:
            return parse_literal(self.types[field], value)
        except ValueError as exc:
            raise SodaError(400, f"Type mismatch for `{field}`: {exc}", "query.soql.type-mismatch") from exc

    def comparison(self) -> Predicate:
        name = self.take("name")
        if self.peek("punct", "("):
            raise malformed_query(f"The function {name}() is not supported by the Socrata emulator")
        field = column(name, self.types)
        if self.peek("kw", "IS"):
            self.pos += 1
            negated = self.accept("kw", "NOT")
            self.take("kw", "NULL")
            return (lambda r: r.get(field) is not None) if negated else (lambda r: r.get(field) is None)
        negated = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("punct", "(")
            options = [self.literal(field)]
            while self.peek("punct", ","):
                self.pos += 1
                options.append(self.literal(field))
            self.take("punct", ")")
            test = _compare(field, lambda v: v in options)
        elif self.accept("kw", "BETWEEN"):
            low = self.literal(field)
            self.take("kw", "AND")
            high = self.literal(field)
            test = _compare(field, lambda v: low <= v <= high)
        elif negated:
            raise malformed_query("NOT must be followed by IN or BETWEEN here")
        else:
            op = _OPS[self.take("op")]
            if op not in (operator.eq, operator.ne) and not orderable(self.types[field]):
                raise malformed_query(f"Cannot order values of `{field}`")
            value = self.literal(field)
            test = _compare(field, lambda v: op(v, value))
        return _negate(test) if negated else test


def _compare(field: str, test: Callable[[Any], bool]) -> Predicate:
    def predicate(row: Row) -> bool | None:
        value = row.get(field)
        return None if value is None else test(value)
    return predicate


def _negate(inner: Predicate) -> Predicate:
    def predicate(row: Row) -> bool | None:
        result = inner(row)
        return None if result is None else not result
    return predicate


def _all_of(parts: list[Predicate]) -> Predicate:
    def predicate(row: Row) -> bool | None:
        results = [p(row) for p in parts]
        return False if False in results else (None if None in results else True)
    return predicate


def _any_of(parts: list[Predicate]) -> Predicate:
    def predicate(row: Row) -> bool | None:
        results = [p(row) for p in parts]
        return True if True in results else (None if None in results else False)
    return predicate


def column(name: str, types: dict[str, str]) -> str:
    """A known column name, or the 400 Socrata answers for an unknown one."""
    if name not in types:
        raise SodaError(400, f"No such column: {name}", "query.soql.no-such-column")
    return name


def compile_where(text: str, types: dict[str, str]) -> Predicate:
    """A ``$where`` clause as a row predicate over stored values."""
    return _WhereParser(text, types).parse()


def equality_filter(field: str, text: str, types: dict[str, str]) -> Predicate:
    """A ``?field=value`` query parameter: equality with the value read as the column's type."""
    column(field, types)
    try:
        value = parse_literal(types[field], text)
    except ValueError as exc:
        raise SodaError(400, f"Type mismatch for `{field}`: {exc}", "query.soql.type-mismatch") from exc
    return _compare(field, lambda v: v == value)


def parse_order(text: str, types: dict[str, str]) -> list[tuple[str, bool]]:
    """``$order`` as (column, descending) pairs; ASC is the default."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise malformed_query(f"Cannot parse $order term {part.strip()!r}")
        name = column(words[0].strip("`"), types)
        if not orderable(types[name]):
            raise malformed_query(f"Cannot order by `{name}`")
        keys.append((name, len(words) == 2 and words[1].upper() == "DESC"))
    return keys


def sort_rows(rows: list[Row], keys: list[tuple[str, bool]]) -> list[Row]:
    """Stable multi-key sort; nulls last when ascending and first when descending, as in PostgreSQL."""
    ordered = list(rows)
    for name, descending in reversed(keys):
        ordered.sort(key=lambda r, n=name: (True, 0) if r.get(n) is None else (False, r[n]),
                     reverse=descending)
    return ordered


def parse_select(text: str, types: dict[str, str], system: tuple[str, ...]) -> tuple[list[str], str | None]:
    """``$select`` as (columns to show, alias of ``count(*)`` or None); aggregates besides it are refused."""
    columns: list[str] = []
    for part in text.split(","):
        item = part.strip()
        count = re.fullmatch(r"count\(\s*\*\s*\)(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?", item, re.IGNORECASE)
        if count:
            if len(text.split(",")) != 1:
                raise malformed_query("count(*) cannot be mixed with columns without $group")
            return [], count.group(1) or "count"
        if item == "*":
            columns.extend(n for n in types if n not in system)
        elif item == ":*":
            columns.extend(system)
        elif re.fullmatch(r"`?:?@?[A-Za-z_][A-Za-z0-9_]*`?", item):
            columns.append(column(item.strip("`"), types))
        else:
            raise malformed_query(f"Cannot parse $select term {item!r}")
    return list(dict.fromkeys(columns)), None
