"""The delete plan, pure: which ids a full fetch deletes, which it holds back (and why), which Knack confirms."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.domain.delete_plan import (
    Candidates,
    Confirm,
    DeleteDecision,
    DeletePlan,
    HeldBack,
    delete_candidates,
    lookup_refusal,
    plan_deletes,
    settle,
)
from tasks.domain.deletes import DeleteGuard

pytestmark = pytest.mark.unit

WHERE = "demo/object_1"
STORED = {f"r{i:03d}" for i in range(100)}


def plan(stored: set[str] = STORED, listed: set[str] | None = None, strays: set[str] | None = None,
         **kw: Any) -> DeletePlan:
    settings: dict[str, Any] = {"where": WHERE, "whole": True, "guard": DeleteGuard(), "can_ask": True,
                                "view": False, "lookup_cap": 50, "quota_refusal": None} | kw
    return plan_deletes(delete_candidates(stored, STORED - {"r001", "r002"} if listed is None else listed,
                                          strays or set()), **settings)


def test_candidates_are_the_unlisted_stored_ids_and_strays() -> None:
    found = delete_candidates({"a", "b", "c"}, {"a", "d"}, {"d", "e"})
    assert found == Candidates(("b", "c", "e"), 5)


def test_nothing_gone_deletes_nothing_and_asks_nothing() -> None:
    nothing = plan(listed=set(STORED))
    assert (nothing.candidates, nothing.confirm, nothing.held_back, nothing.message) == ((), None, None, None)
    assert settle(nothing, None) == DeleteDecision()


def test_some_gone_are_looked_up_then_deleted_as_confirmed() -> None:
    some = plan()
    assert (some.candidates, some.confirm, some.held_back) == (("r001", "r002"), Confirm.LOOKUPS, None)
    assert settle(some, ["r002"]) == DeleteDecision(delete=("r002",))  # r001 was found alive: kept


def test_lookups_that_cannot_be_trusted_delete_nothing() -> None:
    decision = settle(plan(), None)
    assert decision.delete == () and decision.held_back is HeldBack.LOOKUPS_UNTRUSTED
    assert decision.message == (f"{WHERE}: 2 records are missing from the listing, but Knack did not find a "
                                "record it had just listed either; nothing was deleted")


def test_a_listing_in_doubt_deletes_nothing_when_lookups_are_refused() -> None:
    doubt = plan(whole=False, lookup_cap=1)
    assert doubt.confirm is None and doubt.held_back is HeldBack.LISTING_IN_DOUBT
    assert doubt.message == (f"{WHERE}: 2 records are missing from the listing, but the first listing was not "
                             "whole and look-ups were refused (2 candidates are more than delete_lookups_per_run "
                             "(1)); nothing was deleted")
    assert settle(doubt, ["r001", "r002"]).delete == ()


def test_a_listing_in_doubt_still_looks_candidates_up() -> None:
    assert plan(whole=False).confirm is Confirm.LOOKUPS  # a 200 keeps a record: never a wrong delete


def test_above_the_mass_delete_guard_is_held_back_unless_allowed() -> None:
    listed = {f"r{i:03d}" for i in range(80)}  # 20 of 100 missing; the guard allows max(10, 5%) = 10
    held = plan(listed=listed)
    assert held.held_back is HeldBack.MASS_DELETE and held.confirm is None
    assert held.message is not None and "20 of 100 records would be deleted" in held.message
    assert "--allow-mass-delete" in held.message
    assert settle(held, list(held.candidates)) == DeleteDecision(held_back=HeldBack.MASS_DELETE, message=held.message)
    allowed = plan(listed=listed, guard=DeleteGuard(override=True))
    assert allowed.held_back is None and allowed.confirm is Confirm.LOOKUPS and len(allowed.candidates) == 20


def test_the_guard_counts_strays_in_the_population() -> None:
    listed = set(STORED) - {f"r{i:03d}" for i in range(11)}  # 11 missing, limit 10 ...
    assert plan(listed=listed).held_back is HeldBack.MASS_DELETE
    strays = {f"s{i:03d}" for i in range(150)}  # ... but listed strays widen the population: 5% of 250
    assert plan(listed=listed | strays, strays=strays).held_back is None


def test_without_knack_nothing_is_deleted() -> None:
    alone = plan(can_ask=False)
    assert alone.held_back is HeldBack.NO_KNACK and alone.confirm is None
    assert alone.message == f"{WHERE}: 2 records missing from the listing could not be checked with Knack"


def test_above_the_lookup_cap_a_second_listing_confirms() -> None:
    over = plan(lookup_cap=1)
    assert over.confirm is Confirm.LISTING and over.held_back is None
    assert over.lookups_refused == "2 candidates are more than delete_lookups_per_run (1)"
    assert settle(over, ["r001"]).delete == ("r001",)


def test_below_the_quota_floor_a_second_listing_confirms() -> None:
    floor = "fetching needs about 3 requests but only 102 of the daily Knack quota remain and the floor is 100"
    low = plan(quota_refusal=floor)
    assert (low.confirm, low.lookups_refused) == (Confirm.LISTING, floor)


def test_a_second_listing_that_fails_or_is_refused_deletes_nothing() -> None:
    over = plan(lookup_cap=1)
    not_whole = settle(over, None)
    assert not_whole.held_back is HeldBack.SECOND_LISTING and not_whole.delete == ()
    assert not_whole.message is not None and not_whole.message.endswith(
        "but a second whole listing could not confirm them (2 candidates are more than delete_lookups_per_run (1)); "
        "nothing was deleted")
    refused = settle(over, ["r001"], refused="quota spent")
    assert refused.delete == () and refused.message is not None
    assert "could not confirm them (quota spent)" in refused.message


def test_a_views_candidates_after_a_whole_listing_are_confirmed_by_listing() -> None:
    view = plan(view=True)
    assert view.confirm is Confirm.LISTING
    assert view.lookups_refused is not None and "a view's" in view.lookups_refused
    # after a listing in doubt a view's candidates are looked up: a 200 only ever keeps a record
    assert plan(view=True, whole=False).confirm is Confirm.LOOKUPS


def test_lookup_refusal_order() -> None:
    assert lookup_refusal(5, cap=10, view=False, whole=True, quota_refusal=None) is None
    assert lookup_refusal(5, cap=10, view=False, whole=True, quota_refusal="low") == "low"
    assert lookup_refusal(11, cap=10, view=False, whole=True, quota_refusal="low") == (
        "11 candidates are more than delete_lookups_per_run (10)")
    assert "view" in (lookup_refusal(11, cap=10, view=True, whole=True, quota_refusal="low") or "")
