"""Text both destinations build the same way (tasks/domain/text.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.domain.formatting import Address
from tasks.domain.text import as_text, sql_string, where_in

pytestmark = pytest.mark.unit

NOON = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    (True, "true"),
    (False, "false"),
    (Address("1 Main St", 30.2, -97.7), "1 Main St"),
    (Address("", None, None), None),
    (NOON, "noon"),
    (["a", "", Address("2 Oak St", None, None), 3], "a, 2 Oak St, 3"),
    ([], None),
    (("x", False), "x, false"),
    ("<b>as is</b>", "<b>as is</b>"),
    (7.5, "7.5"),
])
def test_as_text_shapes_every_kind_of_value(value: object, expected: str | None) -> None:
    assert as_text(value, date=lambda _: "noon") == expected


def test_strings_and_list_items_go_through_the_string_rule() -> None:
    def shout(text: str) -> str | None:
        return text.upper() or None

    assert as_text(["a", "", "b"], date=datetime.isoformat, string=shout) == "A, B"
    assert as_text("", date=datetime.isoformat, string=shout) is None


def test_sql_literals_double_inner_quotes() -> None:
    assert sql_string("O'Brien") == "'O''Brien'"
    assert where_in("id", ["a", "it's"]) == "id IN ('a','it''s')"
