"""Knack record filters (knack-api.md §4): parse the ``filters`` parameter into a predicate.

Dates compare by **calendar day of the stored local wall time** (the date part of the local-as-UTC
timestamp) against the operand's date; the operand's time of day is ignored. "Today" and "current
time" come from the emulator's injectable clock, converted to the app's timezone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from emulators.knack import dates
from emulators.knack.fields import Pair, numeric_value, plain_text

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

TEXT_TYPES = {"short_text", "paragraph_text", "rich_text", "email", "phone", "link", "name", "concatenation",
              "address", "password"}
NUMBER_TYPES = {"number", "currency", "rating", "auto_increment", "equation", "sum", "average", "count",
                "min", "max"}
NO_VALUE = {"is blank", "is not blank", "is today", "is today or before", "is today or after", "is before today",
            "is after today", "is before current time", "is after current time"}


class FilterError(ValueError):
    """A filter the emulator cannot apply; answered with HTTP 400 and this message."""


def parse(text: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(match, rules) from the raw parameter; a bare array of rules means AND."""
    if text is None or text == "":
        return "and", []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"filters is not valid JSON: {exc.msg}") from None
    if isinstance(value, list):
        return "and", value
    if not isinstance(value, dict):
        raise FilterError("filters must be an object with match/rules or an array of rules")
    match = str(value.get("match") or "and").lower()
    match = {"any": "or", "all": "and"}.get(match, match)
    if match not in ("and", "or"):
        raise FilterError(f"unknown filter match {value.get('match')!r}")
    rules = value.get("rules") or []
    if not isinstance(rules, list):
        raise FilterError("filter rules must be an array")
    return match, rules


def compile_filters(match: str, rules: list[dict[str, Any]], fields: dict[str, dict[str, Any]],
                    now_local: Callable[[], datetime]) -> Predicate | None:
    """One predicate for all rules (None when there are none)."""
    predicates = [_rule(rule, fields, now_local) for rule in rules]
    if not predicates:
        return None
    if match == "or":
        return lambda record: any(p(record) for p in predicates)
    return lambda record: all(p(record) for p in predicates)


def _rule(rule: Any, fields: dict[str, dict[str, Any]], now_local: Callable[[], datetime]) -> Predicate:
    if not isinstance(rule, dict):
        raise FilterError(f"a filter rule must be an object, got {rule!r}")
    key, operator = rule.get("field"), str(rule.get("operator") or "").strip().lower()
    if key not in fields:
        raise FilterError(f"unknown filter field {key!r}")
    field = fields[key]
    kind = field.get("type")
    if operator in ("is blank", "is not blank"):
        wanted = operator == "is blank"
        return lambda record: _blank(record, key) == wanted
    if operator not in NO_VALUE and "value" not in rule and "range" not in rule and "type" not in rule:
        raise FilterError(f"filter on {key} with operator {operator!r} needs a value")
    value = rule.get("value")
    if kind == "date_time":
        return _date_rule(key, operator, rule, now_local)
    if kind in NUMBER_TYPES:
        return _number_rule(key, operator, value)
    if kind == "boolean":
        return _boolean_rule(key, operator, value)
    if kind in ("multiple_choice", "user_roles"):
        return _choice_rule(key, operator, value)
    if kind == "connection":
        return _connection_rule(key, operator, value)
    if kind in TEXT_TYPES:
        return _text_rule(key, operator, value, lambda record: text_of(record, key))
    raise FilterError(f"operator {operator!r} is not supported on {kind} field {key}")


def text_of(record: Record, key: str) -> str:
    """What a text operator compares: the raw string, else the formatted value without HTML."""
    raw = record.get(key + "_raw")
    if isinstance(raw, str):
        return raw
    return plain_text(str(record.get(key, "")).replace("<br />", " "))


def _blank(record: Record, key: str) -> bool:
    raw = record.get(key + "_raw")
    return record.get(key, "") == "" and raw in (None, [], [None], "")


def _text_rule(key: str, operator: str, value: Any, text_of: Callable[[Record], str]) -> Predicate:
    needle = plain_text(value if value is not None else "").casefold()
    tests: dict[str, Callable[[str], bool]] = {
        "is": lambda text: text == needle,
        "is not": lambda text: text != needle,
        "contains": lambda text: needle in text,
        "does not contain": lambda text: needle not in text,
        "starts with": lambda text: text.startswith(needle),
        "ends with": lambda text: text.endswith(needle),
    }
    if operator not in tests:
        raise FilterError(f"operator {operator!r} is not supported on text field {key}")
    test = tests[operator]
    return lambda record: test(text_of(record).casefold())


def _number_rule(key: str, operator: str, value: Any) -> Predicate:
    try:
        operand = float(str(value).replace(",", "").replace("$", ""))
    except ValueError:
        raise FilterError(f"filter value for {key} must be a number, got {value!r}") from None
    tests: dict[str, Callable[[float], bool]] = {
        "is": lambda n: n == operand, "is not": lambda n: n != operand,
        "higher than": lambda n: n > operand, "lower than": lambda n: n < operand,
    }
    if operator not in tests:
        raise FilterError(f"operator {operator!r} is not supported on number field {key}")
    test = tests[operator]

    def predicate(record: Record) -> bool:
        if _blank(record, key):
            return operator == "is not"
        return test(numeric_value_of(record, key))

    return predicate


def numeric_value_of(record: Record, key: str) -> float:
    """A number-like field as a float (currency raw is a string); blank counts as 0."""
    raw_key = key + "_raw"
    return numeric_value(Pair(record.get(key), record[raw_key]) if raw_key in record else None)


def _boolean_rule(key: str, operator: str, value: Any) -> Predicate:
    operand = str(value).strip().lower() in ("true", "yes", "1", "on")
    if operator not in ("is", "is not"):
        raise FilterError(f"operator {operator!r} is not supported on yes/no field {key}")
    wanted = operand if operator == "is" else not operand
    return lambda record: (record.get(key + "_raw") is True) == wanted


def _choice_rule(key: str, operator: str, value: Any) -> Predicate:
    def selected(record: Record) -> list[str]:
        raw = record.get(key + "_raw")
        items = raw if isinstance(raw, list) else ([raw] if raw else [])
        return [str(item).casefold() for item in items if item is not None]

    if operator == "is any":
        wanted = {str(v).casefold() for v in (value if isinstance(value, list) else [value])}
        return lambda record: any(item in wanted for item in selected(record))
    needle = str(value).casefold()
    tests: dict[str, Callable[[list[str]], bool]] = {
        "is": lambda items: needle in items, "is not": lambda items: needle not in items,
        "contains": lambda items: any(needle in item for item in items),
        "does not contain": lambda items: all(needle not in item for item in items),
    }
    if operator not in tests:
        raise FilterError(f"operator {operator!r} is not supported on multiple choice field {key}")
    test = tests[operator]
    return lambda record: test(selected(record))


def _connection_rule(key: str, operator: str, value: Any) -> Predicate:
    needle = str(value).casefold()

    def matches(record: Record) -> list[bool]:
        raw = record.get(key + "_raw") or []
        return [needle in (str(c.get("id", "")).casefold(), str(c.get("identifier", "")).casefold())
                for c in raw if isinstance(c, dict)]

    def contains(record: Record) -> bool:
        raw = record.get(key + "_raw") or []
        return any(needle in str(c.get("identifier", "")).casefold() or needle == str(c.get("id", "")).casefold()
                   for c in raw if isinstance(c, dict))

    tests: dict[str, Predicate] = {
        "is": lambda record: any(matches(record)), "is not": lambda record: not any(matches(record)),
        "contains": contains, "does not contain": lambda record: not contains(record),
    }
    if operator not in tests:
        raise FilterError(f"operator {operator!r} is not supported on connection field {key}")
    return tests[operator]


def stored_local(record: Record, key: str) -> datetime | None:
    """The wall time a date field stores (its start), or None when blank."""
    raw = record.get(key + "_raw")
    if not isinstance(raw, dict) or "unix_timestamp" not in raw:
        return None
    return dates.local_from_ms(raw["unix_timestamp"])


def _period(rule: dict[str, Any], today: date, operator: str) -> tuple[date, date]:
    """[first, last] days of a rolling period relative to ``today``."""
    unit = str(rule.get("type") or rule.get("value") or "days").lower().rstrip("s")
    count = int(rule.get("range") or 1)
    if operator == "is during the current":
        if unit == "week":
            start = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
            return start, start + timedelta(days=6)
        if unit in ("month", "quarter", "year"):
            months = {"month": 1, "quarter": 3, "year": 12}[unit]
            first_month = (today.month - 1) // months * months + 1
            start = date(today.year, first_month, 1)
            return start, dates.add_months(start, months) - timedelta(days=1)
        return today, today
    step = {"day": timedelta(days=count), "week": timedelta(weeks=count)}
    if unit in step:
        back, ahead = today - step[unit], today + step[unit]
    elif unit in ("month", "year"):
        months = count * (12 if unit == "year" else 1)
        back, ahead = dates.add_months(today, -months), dates.add_months(today, months)
    else:
        raise FilterError(f"unknown date range type {rule.get('type')!r}")
    if operator in ("is during the previous", "is before the previous"):
        return back, today - timedelta(days=1)
    return today + timedelta(days=1), ahead


def _date_rule(key: str, operator: str, rule: dict[str, Any], now_local: Callable[[], datetime]) -> Predicate:
    def with_day(test: Callable[[date], bool]) -> Predicate:
        def predicate(record: Record) -> bool:
            stored = stored_local(record, key)
            return stored is not None and test(stored.date())
        return predicate

    if operator in ("is", "is not", "is before", "is after"):
        try:
            day = dates.filter_date(rule.get("value"))
        except (ValueError, KeyError, TypeError):
            raise FilterError(f"bad date {rule.get('value')!r} for {key} (use MM/DD/YYYY)") from None
        if operator == "is not":
            is_day = with_day(lambda d: d == day)
            return lambda record: not is_day(record)
        return with_day({"is": lambda d: d == day, "is before": lambda d: d < day,
                         "is after": lambda d: d > day}[operator])
    day_tests: dict[str, Callable[[date, date], bool]] = {
        "is today": lambda d, t: d == t, "is today or before": lambda d, t: d <= t,
        "is today or after": lambda d, t: d >= t, "is before today": lambda d, t: d < t,
        "is after today": lambda d, t: d > t,
    }
    if operator in day_tests:
        test = day_tests[operator]
        return lambda record: with_day(lambda d: test(d, now_local().date()))(record)
    if operator in ("is before current time", "is after current time"):
        before = operator == "is before current time"

        def by_time(record: Record) -> bool:
            stored, now = stored_local(record, key), now_local()
            return stored is not None and (stored < now if before else stored > now)
        return by_time
    if operator in ("is during the current", "is during the previous", "is during the next",
                    "is before the previous", "is after the next"):
        def by_period(record: Record) -> bool:
            first, last = _period(rule, now_local().date(), operator)
            if operator == "is before the previous":
                return with_day(lambda d: d < first)(record)
            if operator == "is after the next":
                return with_day(lambda d: d > last)(record)
            return with_day(lambda d: first <= d <= last)(record)
        return by_period
    raise FilterError(f"operator {operator!r} is not supported on date field {key}")
