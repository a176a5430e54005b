"""Shared fixtures. Each system's fixtures live in tests/fixtures/<system>.py."""

import pytest

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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n`` (``scripts/test.sh``), every e2e test runs on one worker, in file order: they
    share that worker's Prefect servers and container engine rather than starting one per worker."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("e2e"))
