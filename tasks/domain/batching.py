"""Chunking: the one copy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items, in order."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
