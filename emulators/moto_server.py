"""moto's S3 server as the tests (``tests/fixtures/moto_main.py``) and the bench (``bench/s3_server.py``)
run it: moto's own dispatcher and backends, minus two per-request costs that answer nothing.

- werkzeug's access log: one formatted line per request, written to a stream nobody reads;
- moto's list of its own service packages, which its dispatcher reads from disk (a directory listing and
  a stat per package, under the dispatcher's lock) for every request: read once instead.

A profile of the suite's S3 tests put a fifth of the server's CPU in these two.
"""

from __future__ import annotations

import logging


def trim_per_request_costs() -> None:
    """Call before serving moto's WSGI app in this process."""
    from moto import backends

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
