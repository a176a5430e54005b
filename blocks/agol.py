"""ArcGIS Online (or Enterprise portal) credentials for one environment."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class ArcGISCredentials(Block):
    """A portal URL and the named user that edits the feature services.

    Example:
        from blocks.agol import ArcGISCredentials
        gis = ArcGISCredentials.load("agol-prod").get_gis()
    """

    _block_type_name = "ArcGIS Credentials"
    _block_type_slug = "arcgis-credentials"
    _description = "ArcGIS Online portal URL, user name and password; optional CA bundle for a private CA."

    url: str = Field(default="https://www.arcgis.com", description="Portal URL.")
    username: str = Field(description="Named user with edit rights on the layers.")
    password: SecretStr = Field(description="That user's password.")
    ca_bundle: str | None = Field(default=None,
                                  description="Path of a CA bundle to trust (a private CA or a test emulator).")

    def get_gis(self, timeout: float = 600) -> Any:
        """Sign in and return an ``arcgis.gis.GIS``; TLS is always verified. ``timeout`` bounds each
        request in seconds (the ``arcgis`` default is 600)."""
        from arcgis.gis import GIS

        kwargs: dict[str, Any] = {"ca_bundles": self.ca_bundle} if self.ca_bundle else {}
        return GIS(self.url, username=self.username, password=self.password.get_secret_value(),
                   timeout=timeout, **kwargs)
