"""Knack: the HTTP client, the app's rate limit, the offload into the store, and the Prefect tasks."""
