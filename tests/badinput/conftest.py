"""Bad-input suite fixtures: see ``tests/faults/fixtures.py``."""

from tests.faults.fixtures import agol_secret, make_rig, module_rig_factory, secret_log  # noqa: F401
