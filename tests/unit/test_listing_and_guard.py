"""Pure judgement of a Knack listing's wholeness, and the mass-delete guard."""

from __future__ import annotations

import pytest

from tasks.domain.deletes import DeleteGuard
from tasks.domain.listing import Listing, PageReport

pytestmark = pytest.mark.unit


def listing(rows_per_page: int, counts: list[int], total: int, distinct: int | None = None,
            totals: list[int] | None = None, complete: bool = True) -> Listing:
    pages = -(-total // rows_per_page) if total else 0
    reports = [PageReport(i + 1, n, (totals or [total] * len(counts))[i], pages) for i, n in enumerate(counts)]
    return Listing(rows_per_page, reports, sum(counts) if distinct is None else distinct, complete)


def test_a_whole_listing_is_consistent() -> None:
    whole = listing(1000, [1000, 1000, 500], 2500)
    assert whole.consistent and whole.problems() == [] and whole.total_records == 2500
    assert listing(1000, [1000], 1000).consistent
    assert listing(1000, [0], 0).consistent  # an empty container, one empty page


def test_short_pages_and_overstated_totals_are_not() -> None:
    short = listing(1000, [954, 1000, 500], 2500)
    assert short.problems() == ["short pages before the last: page 1 had 954 of 1000",
                                "2454 distinct records read, total_records says 2500"]
    overstated = listing(1000, [1000, 1000, 454], 2500)  # knackpy #91: 46 records can never be read
    assert overstated.problems() == ["the last page had 454 records, 500 expected",
                                     "2454 distinct records read, total_records says 2500"]


def test_a_total_that_moved_and_duplicates_from_shifted_offsets() -> None:
    moved = listing(1000, [1000, 1000, 499], 2500, totals=[2500, 2499, 2499])
    assert "total_records moved during the fetch (2499, 2500)" in moved.problems()
    shifted = listing(1000, [1000, 1000, 500], 2500, distinct=2499)  # one record read twice, one never
    assert shifted.problems() == ["2499 distinct records read, total_records says 2500"]


def test_missing_pages_and_an_unfinished_fetch() -> None:
    reports = [PageReport(1, 1000, 3000, 3), PageReport(3, 1000, 3000, 3)]
    assert "pages never read: 2" in Listing(1000, reports, 2000, True).problems()
    assert listing(1000, [1000, 1000, 500], 2500, complete=False).problems() == ["the fetch did not finish"]
    assert Listing(1000, [], 0, True).problems() == ["no page came back"]


def test_the_guard_allows_a_few_and_refuses_a_mass_delete() -> None:
    guard = DeleteGuard(max_share=0.05, min_count=10)
    assert guard.limit(50_000) == 2500 and guard.limit(20) == 10
    assert guard.refusal(0, 0, "x") is None
    assert guard.refusal(10, 20, "x") is None           # a small container may lose its few
    assert guard.refusal(2500, 50_000, "x") is None
    message = guard.refusal(2993, 3000, "demo/object_1 in the store")
    assert message is not None
    assert message.startswith("demo/object_1 in the store: 2993 of 3000 records would be deleted")
    assert "nothing was deleted" in message and "--allow-mass-delete" in message
    assert DeleteGuard(override=True).refusal(2993, 3000, "x") is None


def test_a_record_created_while_the_pages_were_read_makes_the_listing_doubtful() -> None:
    from datetime import UTC, datetime

    from tasks.domain.listing import changed_during

    whole = listing(100, [100, 100, 100], 300)
    whole.stamped_during = ["edited", "created"]
    assert whole.problems(known={"edited"}) == [
        "records were created while the pages were read (created): with a delete, a create can shift another "
        "record past a page boundary unseen"]
    assert whole.problems() != [] and not whole.consistent  # without the store's ids every stamp counts
    whole.stamped_during = ["edited"]
    assert whole.problems(known={"edited"}) == []  # an edit of a known record shifts nothing
    whole.stamped_more = True  # the closing check saw only records stamped during the fetch: more may be
    assert whole.problems(known={"edited"}) != []
    began = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    assert changed_during(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), began)  # stamped to the minute
    assert not changed_during(datetime(2026, 3, 1, 11, 59, tzinfo=UTC), began)
    assert not changed_during(None, began)
