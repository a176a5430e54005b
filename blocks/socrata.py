"""Socrata publishing credentials for one environment."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class SocrataCredentials(Block):
    """A Socrata domain and the key used to write to its datasets.

    Example:
        from blocks.socrata import SocrataCredentials
        client = SocrataCredentials.load("socrata-prod").get_client()
    """

    _block_type_name = "Socrata Credentials"
    _block_type_slug = "socrata-credentials"
    _description = "Socrata domain, app token and API key id/secret (or username/password)."

    domain: str = Field(description="Portal domain (data.example.gov) or a full base URL (http://127.0.0.1:8080).")
    app_token: SecretStr | None = Field(default=None, description="App token (X-App-Token); raises rate limits.")
    username: str = Field(description="API key id, or the account's user name.")
    password: SecretStr = Field(description="API key secret, or the account's password.")
    timeout: int = Field(default=60, description="Seconds before one request times out.")

    def get_client(self) -> Any:
        """A sodapy client; an ``http://`` base URL is reached through sodapy's session adapter."""
        from requests.adapters import HTTPAdapter
        from sodapy import Socrata

        domain, adapter = self.domain.rstrip("/"), None
        if domain.startswith("http://"):
            domain, adapter = domain[len("http://"):], {"prefix": "http://", "adapter": HTTPAdapter()}
        elif domain.startswith("https://"):
            domain = domain[len("https://"):]
        token = self.app_token.get_secret_value() if self.app_token else None
        client = Socrata(domain, token, username=self.username, password=self.password.get_secret_value(),
                         session_adapter=adapter, timeout=self.timeout)
        if domain.startswith(("127.", "localhost")):
            client.session.trust_env = False  # a proxy variable must not catch loopback calls
        return client
