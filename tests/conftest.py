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
    """Under ``pytest -n`` (``scripts/test.sh``), the e2e tests run on one worker, one module after the
    other: each starts Prefect servers, workers or containers, and two of them at once would starve the
    other tests of CPU; the modules that use the container engine thus share the worker that brings it up."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("e2e"))
