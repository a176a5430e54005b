"""The error a SODA request fails with, and its JSON body."""

from __future__ import annotations

from typing import Any


class SodaError(Exception):
    """A request refused with an HTTP status and Socrata's error body (``code``, ``error``, ``message``)."""

    def __init__(self, status: int, message: str, code: str | None = "invalid_request",
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.data = data

    def body(self) -> dict[str, Any]:
        """The error object as Socrata shapes it; ``code`` and ``data`` are optional there too."""
        payload: dict[str, Any] = {}
        if self.code is not None:
            payload["code"] = self.code
        payload["error"] = True
        payload["message"] = self.message
        if self.data:
            payload["data"] = self.data
        return payload


def malformed_query(message: str) -> SodaError:
    """A SoQL clause the emulator cannot compile (real Socrata: ``query.compiler.malformed``)."""
    return SodaError(400, message, "query.compiler.malformed")
