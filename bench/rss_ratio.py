"""Peak RSS of two runs' full syncs, as a ratio: ``python bench/rss_ratio.py SMALL.json LARGE.json``.

Prints one JSON object: both peaks (MB), their record counts, the ratio and whether it is within
``--limit`` (default 1.5, the target for N = 50,000 against N = 5,000). Exits 1 when it is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def peak(path: Path) -> tuple[int, float]:
    result = json.loads(path.read_text())
    try:
        return result["params"]["records"], float(result["phases"]["full"]["peak_rss_mb"])
    except KeyError as exc:
        raise SystemExit(f"{path}: not a bench/run.py result with a full phase (missing {exc})") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("small", type=Path)
    p.add_argument("large", type=Path)
    p.add_argument("--limit", type=float, default=1.5)
    args = p.parse_args(argv)
    (n_small, small), (n_large, large) = peak(args.small), peak(args.large)
    ratio = round(large / small, 3)
    print(json.dumps({"records": [n_small, n_large], "peak_rss_mb": [small, large], "ratio": ratio,
                      "limit": args.limit, "ok": ratio <= args.limit}))
    return 0 if ratio <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
