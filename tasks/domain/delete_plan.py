"""Which records a full fetch deletes, pure: the candidates, how Knack confirms them, and what is held back.

A record is deleted only when Knack confirms it gone. The offload (``tasks/knack/offload.py``) asks
``plan_deletes`` what to do with the ids missing from a full listing, does the asking (single-record
look-ups or a second whole listing), then hands Knack's answer to ``settle``, which says what is deleted
now. Nothing here talks to Knack or the store; every message is the one the run logs and reports.

- Candidates: ids the store holds (or a destination holds as strays) that the listing did not return.
- Above the mass-delete guard (``tasks/domain/deletes.py``): held back, unless overridden.
- Nothing to ask Knack with: held back.
- Look-ups, one per candidate plus a control record, while the candidates are at most the per-run cap
  and the quota stays above its floor. A view's candidates after a whole listing are never looked up:
  a view's record route may answer for records its filter leaves out (knack-api.md).
- Otherwise a second whole listing confirms them all, but only after a whole first listing: gone means
  absent from two whole listings. After a listing in doubt, refused look-ups hold everything back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from tasks.domain.deletes import DeleteGuard
from tasks.domain.plan import ids_to_delete


class Confirm(Enum):
    """How Knack confirms the candidates (the run reports the value as ``confirmed_by``)."""

    LOOKUPS = "lookups"   # one request per candidate, after a control record of the listing is found
    LISTING = "listing"   # a second whole listing of the container


class HeldBack(Enum):
    """Why candidates were not deleted."""

    MASS_DELETE = "mass_delete"              # more than the mass-delete guard allows
    NO_KNACK = "no_knack"                    # nothing to confirm them with
    LISTING_IN_DOUBT = "listing_in_doubt"    # the listing was not whole and look-ups were refused
    LOOKUPS_UNTRUSTED = "lookups_untrusted"  # Knack did not find a record it had just listed
    SECOND_LISTING = "second_listing"        # a second whole listing could not confirm them


class Candidates(NamedTuple):
    """The ids a full listing did not return, out of how many the container holds anywhere."""

    ids: tuple[str, ...]
    population: int   # the store's ids, the listed ids and the strays together


def delete_candidates(stored_ids: Collection[str], listed_ids: Collection[str],
                      strays: Collection[str] = ()) -> Candidates:
    """The store's ids the listing did not return, with the strays (rows a destination holds that the
    store never had) it did not return either: all confirmed with Knack alike."""
    listed = set(listed_ids)
    stray_ids = set(strays)
    ids = tuple(sorted(set(ids_to_delete(stored_ids, listed)) | (stray_ids - listed)))
    return Candidates(ids, len(set(stored_ids) | listed | stray_ids))


@dataclass(frozen=True)
class DeletePlan:
    """What to do with the ids a full listing did not return."""

    where: str
    candidates: tuple[str, ...]
    population: int                     # the store's ids, the listed ids and the strays together
    confirm: Confirm | None = None      # None: nothing to confirm (no candidates, or held back)
    held_back: HeldBack | None = None
    message: str | None = None          # why held back, as logged and reported
    lookups_refused: str | None = None  # why the candidates are not looked up one by one

    @property
    def asks_knack(self) -> bool:
        return self.confirm is not None


@dataclass(frozen=True)
class DeleteDecision:
    """What a plan, with Knack's answer, deletes now; or why nothing."""

    delete: tuple[str, ...] = ()
    held_back: HeldBack | None = None
    message: str | None = None


def lookup_refusal(count: int, *, cap: int, view: bool, whole: bool, quota_refusal: str | None) -> str | None:
    """Why ``count`` candidates are not looked up one by one: a view after a whole listing, over the
    per-run cap, or the quota (``quota_refusal``: the client's refusal of ``count + 1`` requests)."""
    if view and whole:
        return "the candidates are a view's, whose record route may answer for records its filter leaves out"
    if count > cap:
        return f"{count} candidates are more than delete_lookups_per_run ({cap})"
    return quota_refusal


def _missing(plan: DeletePlan, doubt: str) -> str:
    return (f"{plan.where}: {len(plan.candidates)} records are missing from the listing, but {doubt}; "
            "nothing was deleted")


def plan_deletes(found: Candidates, *, where: str, whole: bool, guard: DeleteGuard, can_ask: bool, view: bool,
                 lookup_cap: int, quota_refusal: str | None = None) -> DeletePlan:
    """The plan for one full fetch's candidates (``delete_candidates``).

    ``whole``: the listing was whole (``tasks/domain/listing.py``); ``can_ask``: a Knack client is at
    hand; ``view``: the container is a view; ``quota_refusal``: why the quota refuses one look-up per
    candidate plus one (None when it allows them)."""
    candidates, population = found
    plan = DeletePlan(where, candidates, population)
    mass = guard.refusal(len(candidates), population, f"{where} in the store")
    if mass:
        return DeletePlan(where, candidates, population, held_back=HeldBack.MASS_DELETE, message=mass)
    if not candidates:
        return plan
    if not can_ask:
        return DeletePlan(where, candidates, population, held_back=HeldBack.NO_KNACK,
                          message=f"{where}: {len(candidates)} records missing from the listing could not be "
                                  "checked with Knack")
    why_not = lookup_refusal(len(candidates), cap=lookup_cap, view=view, whole=whole, quota_refusal=quota_refusal)
    if why_not is None:
        return DeletePlan(where, candidates, population, confirm=Confirm.LOOKUPS)
    if whole:
        return DeletePlan(where, candidates, population, confirm=Confirm.LISTING, lookups_refused=why_not)
    return DeletePlan(where, candidates, population, held_back=HeldBack.LISTING_IN_DOUBT, lookups_refused=why_not,
                      message=_missing(plan, f"the first listing was not whole and look-ups were refused ({why_not})"))


def settle(plan: DeletePlan, gone: Sequence[str] | None, *, refused: str | None = None) -> DeleteDecision:
    """What ``plan`` deletes once Knack answered: ``gone``, the candidates Knack confirmed gone, or None
    when its answer cannot be trusted (the control record was not found, or the second listing was not
    whole); ``refused``: why the second listing could not be made (the quota)."""
    if plan.held_back is not None:
        return DeleteDecision(held_back=plan.held_back, message=plan.message)
    if plan.confirm is None:
        return DeleteDecision()
    if gone is not None and refused is None:
        return DeleteDecision(delete=tuple(gone))
    if plan.confirm is Confirm.LOOKUPS:
        return DeleteDecision(held_back=HeldBack.LOOKUPS_UNTRUSTED,
                              message=_missing(plan, "Knack did not find a record it had just listed either"))
    why_not = refused if refused is not None else plan.lookups_refused
    return DeleteDecision(held_back=HeldBack.SECOND_LISTING,
                          message=_missing(plan, f"a second whole listing could not confirm them ({why_not})"))
