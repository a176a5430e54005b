"""``python flows/sync.py`` as a user runs it: no Prefect server (ephemeral mode), credentials from the
environment, the local folder store; exit codes say whether the run worked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulators.knack import KnackEmulator, generate_app
from emulators.provision import agol_definition, socrata_schema
from tasks.domain.config import load_config
from tests.fixtures.socrata import SOCRATA_APP_TOKEN, SOCRATA_PASSWORD, SOCRATA_USERNAME

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def sync_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "flows/sync.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_sync_script_runs_ephemeral_with_env_credentials(tmp_path: Path, socrata_emulator: Any,
                                                        arcgis_emulator: Any) -> None:
    store = tmp_path / "store"
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw.update({"store": "local", "local_store": str(store)})
    config_path = tmp_path / "knack-services.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    app = generate_app(records=120, seed=21)
    cfg = load_config(config_path).container("demo", "object_2")
    arcgis_emulator.create_layer(cfg.service_id, agol_definition(app["metadata"], cfg), layer_id=0)
    sig = load_config(config_path).container("demo", "object_1")
    socrata_emulator.create_dataset(sig.socrata_resource_id, socrata_schema(app["metadata"], sig))

    with KnackEmulator(app) as knack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
        env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                    "KNACK_SERVICES_CONFIG": str(config_path),
                    "KNACK_APP_ID": knack.app_id, "KNACK_API_KEY": knack.api_key, "KNACK_API_URL": knack.api_url,
                    "SOCRATA_DOMAIN": socrata_emulator.url, "SOCRATA_USERNAME": SOCRATA_USERNAME,
                    "SOCRATA_PASSWORD": SOCRATA_PASSWORD, "SOCRATA_APP_TOKEN": SOCRATA_APP_TOKEN,
                    "AGOL_URL": arcgis_emulator.portal_url, "AGOL_USERNAME": arcgis_emulator.username,
                    "AGOL_PASSWORD": arcgis_emulator.password, "AGOL_CA_BUNDLE": str(arcgis_emulator.ca_bundle)})

        done = sync_cli(env, "-a", "demo", "-c", "object_2", "-e", "dev")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        ids = sorted(r["id"] for r in knack.records("object_2"))
        assert sorted(p.stem for p in (store / "dev" / "demo" / "object_2").glob("*.json")) == ids
        assert json.loads((store / "dev" / "demo" / "metadata.json").read_text())["application"]["id"]
        assert sorted(f["attributes"]["id"] for f in arcgis_emulator.features(cfg.service_id, 0)) == ids
        output = done.stdout + done.stderr
        assert knack.api_key not in output and arcgis_emulator.password not in output

        unknown = sync_cli(env, "-a", "demo", "-c", "object_9", "-e", "dev")
        assert unknown.returncode == 1  # refused in one line before Prefect is imported
        assert "app 'demo' has no container 'object_9'" in unknown.stderr
        assert len(unknown.stderr.splitlines()) == 1, unknown.stderr

        bad_env = sync_cli(env, "-a", "demo", "-c", "object_2", "-e", "test")
        assert bad_env.returncode == 2
        assert bad_env.stderr == "sync failed: env must be 'prod' or 'dev', got 'test'\n", bad_env.stderr

        # the store is up to date but Socrata refuses the credentials: exit 1, nothing lost
        env["SOCRATA_PASSWORD"] = "wrong-" + SOCRATA_PASSWORD
        failed = sync_cli(env, "-a", "demo", "-c", "object_1", "-e", "dev", "--only", "socrata")
        assert failed.returncode == 1
        assert "the store is up to date, but publishing to socrata failed" in failed.stderr
        assert env["SOCRATA_PASSWORD"] not in failed.stdout + failed.stderr
        assert len(list((store / "dev" / "demo" / "object_1").glob("*.json"))) == len(knack.records("object_1"))

        # Knack refuses the key (401) or does not know the app (404): one clear line, no traceback
        for var, value, refusal in (("KNACK_API_KEY", "wrong-" + knack.api_key, "HTTP 401"),
                                    ("KNACK_APP_ID", "0" * 24, "HTTP 404: Application not found; check the app id")):
            refused = sync_cli({**env, var: value}, "-a", "demo", "-c", "object_2", "-e", "dev", "--full")
            output = refused.stdout + refused.stderr
            assert refused.returncode == 1, output[-3000:]
            said = [line for line in refused.stderr.splitlines() if line.startswith("sync failed:")]
            assert len(said) == 1 and said[0].startswith("sync failed: Knack refused the request: " + refusal), \
                output[-3000:]
            assert "Traceback" not in output, output[-3000:]
            assert value not in output or var == "KNACK_APP_ID"
