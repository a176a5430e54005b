"""Shared fixtures. Each system's fixtures live in tests/fixtures/<system>.py."""

pytest_plugins = [
    "tests.fixtures.env",
    "tests.fixtures.knack",
    "tests.fixtures.socrata",
    "tests.fixtures.arcgis",
    "tests.fixtures.s3",
    "tests.fixtures.store",
    "tests.fixtures.pipeline",
    "tests.fixtures.engine",
]

