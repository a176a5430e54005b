"""Is a Knack listing whole? Pure judgement over what each page of one fetch reported.

Knack's ``total_records`` is an estimate and a page may come back short (knack-api.md §3), and
records deleted, added or re-sorted while the pages are read shift the offsets under the fetch.
None of that is an error, but a listing that shows any of it cannot prove that a record is gone
(so it never deletes by itself) nor that nothing was skipped (so the Knack cursor stays).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PageReport:
    """What one page's response said: its number, how many records it held, and its envelope."""

    page: int
    rows: int
    total_records: int
    total_pages: int


@dataclass
class Listing:
    """Every page of one fetch, with the distinct records it produced."""

    rows_per_page: int
    pages: list[PageReport] = field(default_factory=list)
    distinct: int = 0
    complete: bool = False  # the fetch reached its last page (nobody stopped reading early)
    knack_time: datetime | None = None  # Knack's clock when the fetch began (its Date header), if it sent one
    # the closing check of a listing of several pages: records stamped at or after the fetch began (a
    # create during the fetch, with a delete, keeps every count right while shifting a record unseen), and
    # whether there may be more than the check could see
    stamped_during: list[str] = field(default_factory=list)
    stamped_more: bool = False

    def problems(self, known: Collection[str] | None = None) -> list[str]:
        """Why this listing cannot be trusted; empty when it is consistent. ``known``: the ids the store held
        before the fetch; a record stamped during it and not known was created then (an edit of a known
        record moves nothing); without ``known`` every such record counts."""
        if not self.complete:
            return ["the fetch did not finish"]
        if not self.pages:
            return ["no page came back"]
        found: list[str] = []
        by_number = {p.page: p for p in self.pages}
        first = by_number.get(1) or self.pages[0]
        totals = sorted({p.total_records for p in self.pages})
        if len(totals) > 1:
            found.append(f"total_records moved during the fetch ({', '.join(map(str, totals))})")
        total = first.total_records
        expected_pages = math.ceil(total / self.rows_per_page) if total else 0
        if first.total_pages != expected_pages and not (total == 0 and first.total_pages <= 1):
            found.append(f"total_pages {first.total_pages} does not fit total_records {total}")
        missing = sorted(set(range(1, first.total_pages + 1)) - set(by_number))
        if missing:
            found.append(f"pages never read: {', '.join(map(str, missing[:10]))}")
        short = [p for p in self.pages if p.page < first.total_pages and p.rows != self.rows_per_page]
        if short:
            found.append("short pages before the last: " + ", ".join(
                f"page {p.page} had {p.rows} of {self.rows_per_page}" for p in short[:10]))
        last = by_number.get(first.total_pages)
        if last is not None and first.total_pages >= 1:
            want = total - (first.total_pages - 1) * self.rows_per_page
            if last.rows != want:
                found.append(f"the last page had {last.rows} records, {want} expected")
        if self.distinct != total:
            found.append(f"{self.distinct} distinct records read, total_records says {total}")
        created = [rid for rid in self.stamped_during if known is None or rid not in known]
        if created or self.stamped_more:
            shown = ", ".join(created[:5]) or "more than the closing check could see"
            found.append(f"records were created while the pages were read ({shown}): with a delete, a create "
                         "can shift another record past a page boundary unseen")
        return found

    @property
    def consistent(self) -> bool:  # every record stamped during the fetch counts: see ``problems``
        return not self.problems()

    @property
    def total_records(self) -> int | None:
        return self.pages[0].total_records if self.pages else None


def changed_during(newest: datetime | None, began: datetime | None) -> bool:
    """Was a modified stamp written after the fetch began? Knack stamps to the minute (an edit at
    12:00:45 reads 12:00), so any stamp in the fetch's first minute counts."""
    if newest is None or began is None:
        return False
    return newest >= began.replace(second=0, microsecond=0)
