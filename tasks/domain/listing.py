"""Is a Knack listing whole? Pure judgement over what each page of one fetch reported.

Knack's ``total_records`` is an estimate and a page may come back short (knack-api.md §3), and
records deleted, added or re-sorted while the pages are read shift the offsets under the fetch.
None of that is an error, but a listing that shows any of it cannot prove that a record is gone
(so it never deletes by itself) nor that nothing was skipped (so the Knack cursor stays).
"""

from __future__ import annotations

import math
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

    def problems(self) -> list[str]:
        """Why this listing cannot be trusted; empty when it is consistent."""
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
        return found

    @property
    def consistent(self) -> bool:
        return not self.problems()

    @property
    def total_records(self) -> int | None:
        return self.pages[0].total_records if self.pages else None
