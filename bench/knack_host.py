"""The Knack emulator in its own process, plus one read-only admin route the CLI lacks.

``python bench/knack_host.py --records N [--latency-ms L] [--per-record-ms R] [--rate-limit 10]``
serves the generated app exactly like ``python -m emulators knack`` and also answers
``GET /_admin/request-times`` with the emulator's arrival time of every API request since the
last counter reset (``time.monotonic()`` of this process: only differences mean anything).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulators._http import Request, Response, json_response  # noqa: E402
from emulators.knack.app import KnackEmulator  # noqa: E402
from emulators.knack.cli import _parser  # noqa: E402
from emulators.knack.generator import generate_app  # noqa: E402


class BenchKnack(KnackEmulator):
    """The emulator with its request times (and peak concurrency) readable over HTTP."""

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/_admin/request-times":
            return json_response({"times": self.request_times(), "peak_in_flight": self.peak_in_flight()})
        return super().handle(request)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    app = generate_app(records=args.records, seed=args.seed)
    emu = BenchKnack(app, app_id=args.app_id, api_key=args.api_key, rate_limit_per_second=args.rate_limit or None,
                     daily_quota=args.daily_quota, host=args.host, port=args.port, verbose=args.verbose)
    del app  # the emulator keeps its own serialized copy
    emu.set_latency(args.latency_ms, args.per_record_ms)
    emu.serve_until_signal()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
