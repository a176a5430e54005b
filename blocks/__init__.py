"""Credential blocks, one per system and environment, with an environment-variable fallback.

Register the block types with ``prefect block register -m blocks``.
"""

from blocks.agol import ArcGISCredentials
from blocks.knack import KnackCredentials
from blocks.socrata import SocrataCredentials

__all__ = ["ArcGISCredentials", "KnackCredentials", "SocrataCredentials"]
