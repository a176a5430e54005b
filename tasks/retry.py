"""What counts as a transient fault: the only errors any of our retries will retry."""

from __future__ import annotations

import requests

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status carried by an exception, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status is not None else None


def is_transient(exc: BaseException) -> bool:
    """Timeouts, dropped connections, 429 and 5xx: worth another try. A 4xx mistake never is."""
    if isinstance(exc, requests.Timeout | requests.ConnectionError | TimeoutError | ConnectionError):
        return True
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS or status >= 500
    return bool(getattr(exc, "transient", False))
