"""The flows' parameter types, as the Prefect UI shows them (a choice for ``env`` and destinations)."""

from __future__ import annotations

from typing import Literal

Env = Literal["dev", "prod"]
"""``prod`` or ``dev``: the S3 prefix and the suffix of every credential block name."""

Destination = Literal["socrata", "agol", "table"]
