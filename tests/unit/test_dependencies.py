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
    installed = [module for module in LEFT_OUT.values() if find_spec(module)]
    assert installed == [], f"{installed} in .venv, left there by an older set-up: .venv/bin/uv pip uninstall {' '.join(installed)}"


def test_every_publishing_module_imports_without_them() -> None:
    # the left-out packages refused outright, so the proof holds in a venv that still has them installed
    code = (f"import importlib, json, sys\nLEFT_OUT = {set(LEFT_OUT.values())!r}\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in LEFT_OUT:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r} (left out)', name=name)\n"
            "sys.meta_path.insert(0, Refuse())\n"
            f"for name in {PUBLISHING!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"arcgis", "deltalake", "arro3", "pandas", "sodapy"} <= modules
    assert not set(LEFT_OUT.values()) & modules
