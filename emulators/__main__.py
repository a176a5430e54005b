"""``python -m emulators {knack,socrata,arcgis} [options]``: run one emulator in the foreground."""

from __future__ import annotations

import importlib
import sys

NAMES = ("knack", "socrata", "arcgis")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in NAMES:
        print(f"usage: python -m emulators {{{','.join(NAMES)}}} [options]  (--help for each)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"emulators.{args[0]}")
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
