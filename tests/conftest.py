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
    """Under ``pytest -n`` (``scripts/test.sh``), each e2e module runs whole on one worker, so its
    module-scoped Prefect server starts once; the modules that use the container engine share one worker,
    the one that brings the engine up."""
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    engine_modules = {module(item) for item in items if "container_engine" in getattr(item, "fixturenames", ())}
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("engine" if module(item) in engine_modules else module(item)))
