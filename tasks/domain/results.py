"""What each step reports back to its flow: typed results, and the run report they make together.

Tasks return these; flows read their fields. ``as_dict`` gives the JSON-shaped report that ``sync``
returns (the benchmark and the run artifact read that shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class OffloadResult:
    """Counts of one container's offload (Knack → store), for logs and the run artifact."""

    container: str
    mode: str                 # "full" or "incremental"
    since: str | None         # the instant records were fetched from (None: everything)
    cursor: str | None        # the Knack cursor after the run (None: not advanced)
    fetched: int
    written: int
    unchanged: int
    deleted: int
    generation: int
    unknown_fields: list[str]
    seconds: float
    knack_requests: int = 0           # filled in by the task, which owns the client
    quota_remaining: int | None = None
    store: str = ""                   # where the records went ("s3://bucket ...", "local folder ...")
    listing_consistent: bool = True   # Knack's listing was whole (else: no deletes from it, cursor kept)
    listing_problems: list[str] = field(default_factory=list)
    lookups: int = 0                  # requests confirming deletes (look-ups, or a second listing's pages)
    repaired: int = 0                 # objects missing or damaged in the store, written again
    held_back: str | None = None      # deletes the mass-delete guard (or an untrustworthy Knack) held back
    confirmed_by: str | None = None   # how delete candidates were confirmed: "lookups" or "listing"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PublishResult:
    """Counts of one publish run (store → one destination)."""

    mode: str                 # "full" or "incremental"
    read: int                 # records read from the store
    upserted: int             # rows or features sent
    deleted: int              # ids deleted downstream
    generation: int           # the store generation published up to
    seconds: float
    counts: Mapping[str, int] = field(default_factory=dict)  # the destination's own: created, added, ...

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "read": self.read, "upserted": self.upserted, **self.counts,
                "deleted": self.deleted, "generation": self.generation, "seconds": self.seconds}


@dataclass(frozen=True)
class PublishFailure:
    """A destination that failed; its cursor did not move."""

    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.error}


@dataclass(frozen=True)
class SyncReport:
    """One container's ``sync`` run: the store step, then each destination."""

    app: str
    container: str
    env: str
    store: OffloadResult
    published: Mapping[str, PublishResult | PublishFailure] = field(default_factory=dict)

    def failed(self) -> dict[str, str]:
        """Destination → error, for those that failed."""
        return {name: result.error for name, result in self.published.items() if isinstance(result, PublishFailure)}

    def as_dict(self) -> dict[str, Any]:
        return {"app": self.app, "container": self.container, "env": self.env, "store": self.store.as_dict(),
                "published": {name: result.as_dict() for name, result in self.published.items()}}
