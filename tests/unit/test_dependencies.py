"""What the runtime venv leaves out (pyproject.toml, ``[tool.uv] exclude-dependencies``) and what still works
without it: pyarrow, arcgis-geometry and dask are in no install, and the code that publishes to every
destination imports without them (a fresh interpreter, its own list of what it imported)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = {"pyarrow": "pyarrow", "arcgis-geometry": "arcgis_geometry", "dask": "dask"}
PUBLISHING = ("tasks.table.client", "tasks.domain.table", "tasks.agol.client", "tasks.socrata.client",
              "arcgis.gis", "arcgis.features", "deltalake", "pandas", "sodapy", "knackpy", "boto3")


def test_the_lock_and_the_venv_leave_them_out() -> None:
    excluded = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["exclude-dependencies"])
    assert set(LEFT_OUT) <= excluded
    locked = {p["name"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    assert not set(LEFT_OUT) & locked, sorted(set(LEFT_OUT) & locked)
    assert {"arro3-core", "deltalake", "arcgis", "pandas"} <= locked
    assert [module for module in LEFT_OUT.values() if find_spec(module)] == []


def test_every_publishing_module_imports_without_them() -> None:
    code = (f"import importlib, json, sys\nfor name in {PUBLISHING!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"arcgis", "deltalake", "arro3", "pandas", "sodapy"} <= modules
    assert not set(LEFT_OUT.values()) & modules
