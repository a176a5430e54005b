"""Summarise a py-spy ``--format raw`` profile: ``python bench/profile_summary.py FILE [--top 25] [--under F]``.

Prints the functions with the most samples where they were running themselves (self) and anywhere
on the stack (inclusive), as shares of all samples. With ``py-spy record --gil`` a sample is a
moment some thread held the GIL, so the shares say where the CPU went, not where threads waited.
``--under`` keeps only stacks through a frame containing that text (e.g. ``write_records``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def load(path: Path, under: str | None) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if under and not any(under in f for f in frames):
            continue
        stacks.append((frames, int(count)))
    return stacks


def short(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py)``: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--under", default=None)
    args = p.parse_args(argv)
    stacks = load(args.file, args.under)
    total = sum(n for _, n in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        own[short(frames[-1])] += n
        for name in {short(f) for f in frames}:
            inclusive[name] += n
    print(f"{total} samples{f' under {args.under}' if args.under else ''}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n-- {title} --")
        for name, n in counter.most_common(args.top):
            print(f"{100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
