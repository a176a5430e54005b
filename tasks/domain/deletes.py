"""The mass-delete guard, pure: how many deletes one run may make in one place.

A run that would remove more than ``max_share`` of a container's records (and more than
``min_count``, so that a small container can still lose a record or two) removes none of them
and says so with the counts; the rest of its work goes on. An explicit override lets the real
case through (a purge in Knack): ``--allow-mass-delete`` on the command line, ``allow_mass_delete``
on a deployment run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Single-record look-ups one run may spend confirming delete candidates; beyond it a second whole
# listing of the container confirms them all (its pages, whatever their number).
DELETE_LOOKUPS_PER_RUN = 50


@dataclass(frozen=True)
class DeleteGuard:
    """How many deletes are normal for one run: ``max(min_count, max_share × population)``."""

    max_share: float = 0.05
    min_count: int = 10
    override: bool = False

    def limit(self, population: int) -> int:
        return max(self.min_count, math.floor(self.max_share * max(population, 0)))

    def refusal(self, count: int, population: int, where: str) -> str | None:
        """None when ``count`` deletes out of ``population`` may go ahead; else why not, with the counts."""
        if count == 0 or self.override or count <= self.limit(population):
            return None
        return (f"{where}: {count} of {population} records would be deleted, more than the guard allows "
                f"({self.limit(population)}: {self.max_share:.0%} of the container, at least {self.min_count}); "
                "nothing was deleted. If Knack really lost them, run again with --allow-mass-delete "
                "(deployment parameter allow_mass_delete=true)")

