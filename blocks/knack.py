"""Knack API credentials for one app in one environment."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class KnackCredentials(Block):
    """API credentials for one Knack app in one environment.

    Example:
        from blocks.knack import KnackCredentials
        creds = KnackCredentials.load("knack-data-tracker-prod")
    """

    _block_type_name = "Knack Credentials"
    _block_type_slug = "knack-credentials"
    _description = "Knack application id, REST API key and API root for one app and environment."

    app_id: str = Field(description="Knack application id (24 hex characters).")
    api_key: SecretStr = Field(description="REST API key of the app.")
    api_url: str = Field(default="https://api.knack.com/v1",
                         description="API root; point it at an account host or a local emulator.")

    def headers(self) -> dict[str, str]:
        """Object-based request headers: the only place the key leaves its SecretStr."""
        return {"X-Knack-Application-Id": self.app_id,
                "X-Knack-REST-API-Key": self.api_key.get_secret_value()}
