"""Prefect flows: ``sync`` (the main job), the seed's four services, and the fan-out ``sync-app``."""
