"""What a destination lets a run do, and what it counts: pure, so the publish driver asks these, not names.

``Capabilities`` come from the container config before anything is opened (a ``no_replace_socrata``
dataset takes no full refresh and never loses the rows the store lacks); ``PublishCounts`` and
``AuditCounts`` are one run's counts, given as the report's dict by ``as_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar


@dataclass(frozen=True)
class Capabilities:
    """What a run may do to one destination."""

    kind: str                    # in messages: "Socrata", "ArcGIS", "table"
    full_refresh: bool = True    # a --full run reconciles it (else it gets an incremental publish)
    removes_strays: bool = True  # a full refresh or first publish deletes the rows the store lacks
    kept_by: str | None = None   # the setting that takes these away, named in logs and errors

    def publishes_full(self, full: bool) -> bool:
        """Whether a run asked for ``full`` is a full refresh here."""
        return full and self.full_refresh

    def incremental_note(self, full: bool) -> str | None:
        """The line a ``--full`` sync logs when this destination gets an incremental publish instead."""
        if full and not self.full_refresh:
            return f"{self.kept_by} is set: {self.kind} gets an incremental publish"
        return None

    def strays_note(self) -> str | None:
        """Why a full refresh leaves the rows the store lacks in place here (None: it deletes them)."""
        return None if self.removes_strays else f"{self.kept_by}: rows the store lacks are left in place"


@dataclass(frozen=True)
class PublishCounts:
    """One run's writes to a destination: ``upserted`` (rows or features sent) and, in a subclass, the
    destination's own counts; ``removed``, what it counted deleted (None: it does not count them)."""

    upserted: int = 0
    removed: int | None = None
    removed_key: ClassVar[str] = "deleted"  # the report's name for ``removed``

    def with_removed(self, removed: int | None) -> PublishCounts:
        return replace(self, removed=removed)

    def as_dict(self) -> dict[str, int]:
        """The destination's own counts as the report shows them (``upserted`` is a column of its own)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("upserted", "removed")}
        return own | ({} if self.removed is None else {self.removed_key: self.removed})


@dataclass(frozen=True)
class SocrataCounts(PublishCounts):
    created: int = 0
    updated: int = 0


@dataclass(frozen=True)
class AgolCounts(PublishCounts):
    added: int = 0
    updated: int = 0
    removed_key: ClassVar[str] = "features_deleted"


@dataclass(frozen=True)
class TableCounts(PublishCounts):
    inserted: int = 0
    updated: int = 0
    copied: int = 0   # unchanged rows rewritten beside the merged ones
    removed_key: ClassVar[str] = "rows_deleted"


@dataclass(frozen=True)
class AuditCounts:
    """A reconcile's read of the destination: the ids it holds, those missing there, the rows that
    differ from what they were last sent (None: compared by ids only), the strays deleted."""

    held: int
    missing: int
    differed: int | None = None
    strays: int = 0

    def with_strays(self, strays: int) -> AuditCounts:
        return replace(self, strays=strays)

    def as_dict(self) -> dict[str, int]:
        return {"held": self.held, "missing": self.missing,
                **({} if self.differed is None else {"differed": self.differed}), "strays": self.strays}
