"""Alerts as code on a local Prefect server (its triggers and actions services running), sending through a
generic webhook notification block to a loopback receiver: a prod run that fails, a full run cancelled and a
held-back delete each give exactly one alert naming app, container, env, what happened and the runbook
entry, with no secret; installing the alerts twice leaves one automation of each."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulators.knack import KnackEmulator, generate_app
from scripts.alerts import PREFIX, specs
from tests.e2e.test_deployment import ROOT, api, cli, process_server  # noqa: F401 - the module's one Prefect server

pytestmark = pytest.mark.e2e

SECRET = "knack-key-Zq81-SECRET-do-not-log"
BLOCK = "custom-webhook/knack-alerts"


class Webhook:
    """A loopback HTTP receiver: every JSON body POSTed to it, in arrival order."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 90, quiet: float = 5) -> list[dict[str, Any]]:
        """The posts once ``count`` have arrived and ``quiet`` seconds more brought no other."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(quiet)
        return list(self.posts)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.httpd.shutdown()


def python(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    if ok:
        assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def automations(env: dict[str, str]) -> list[dict[str, Any]]:
    return [a for a in api(env, "POST", "/automations/filter", {}) if a["name"].startswith(PREFIX)]


def alert_text(post: dict[str, Any]) -> str:
    return f"{post.get('subject', '')}\n{post.get('body', '')}"


def check_alert(text: str, container: str, what: str, runbook: str) -> None:
    assert "app: demo" in text and f"container: {container}" in text and "env: prod" in text, text
    assert what in text, text
    assert f"RUNBOOK.md#{runbook}" in text, text
    assert SECRET not in text, text


@pytest.fixture(scope="module")
def alerts_env(process_server: dict[str, str], webhook: Webhook, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
               ) -> Iterator[dict[str, str]]:
    """The server's environment with the webhook block saved and the alerts installed (twice)."""
    env = {**process_server, "PYTHONPATH": str(ROOT)}
    python(env, "-c", "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B; "
                      f"B(name='knack-alerts', url={webhook.url!r}, "
                      "json_data={'subject': '{{subject}}', 'body': '{{body}}'}).save('knack-alerts', overwrite=True)")
    first = python(env, "scripts/alerts.py", "--block", BLOCK).stdout
    second = python(env, "scripts/alerts.py", "--block", BLOCK).stdout
    assert first.count("created: ") == len(specs()), first
    assert second.count("unchanged: ") == len(specs()), second
    yield env


def test_installing_twice_leaves_one_automation_of_each_and_check_agrees(alerts_env: dict[str, str]) -> None:
    names = sorted(a["name"] for a in automations(alerts_env))
    assert names == sorted(s["name"] for s in specs())
    assert python(alerts_env, "scripts/alerts.py", "--block", BLOCK, "--check").returncode == 0
    # a duplicate made by hand is folded back into one
    dup = automations(alerts_env)[0]
    api(alerts_env, "POST", "/automations/", {k: dup[k] for k in ("name", "description", "enabled", "trigger",
                                                                    "actions")})
    assert python(alerts_env, "scripts/alerts.py", "--block", BLOCK, "--check", ok=False).returncode == 1
    assert "updated: " + dup["name"] in python(alerts_env, "scripts/alerts.py", "--block", BLOCK).stdout
    assert sorted(a["name"] for a in automations(alerts_env)) == names


def test_a_missing_block_is_refused_by_name(alerts_env: dict[str, str]) -> None:
    proc = python(alerts_env, "scripts/alerts.py", "--block", "slack-webhook/nobody", ok=False)
    assert proc.returncode == 1
    assert "alert_block 'slack-webhook/nobody': no such Prefect block" in proc.stderr


def test_each_prod_incident_gives_exactly_one_alert(alerts_env: dict[str, str], webhook: Webhook,
                                                    tmp_path: Path) -> None:
    knack = KnackEmulator(generate_app(records=40, seed=3), api_key=SECRET, rate_limit_per_second=None).start()
    try:
        raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
        body = raw["apps"]["demo"]["containers"]["object_1"]
        raw["apps"]["demo"]["containers"] = {"object_1": {"modified_date_field_id": body["modified_date_field_id"]}}
        raw.update({"store": "local", "local_store": str(tmp_path / "store"), "delete_guard_min": 2,
                    "delete_guard_share": 0.05})
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        env = {**alerts_env, "KNACK_SERVICES_CONFIG": str(tmp_path / "config.yaml"), "KNACK_APP_ID": knack.app_id,
               "KNACK_API_KEY": SECRET, "KNACK_API_URL": knack.api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
        sync = ["flows/sync.py", "-a", "demo", "-c", "object_1", "-e", "prod"]
        webhook.posts.clear()

        # 1. a full run that completes: no alert; then Knack loses most records: the deletes are held back
        python(env, *sync, "--full")
        for record in knack.records("object_1")[:30]:
            knack.delete_record("object_1", record["id"])
        held = python(env, *sync, "--full", ok=False)
        assert held.returncode != 0 and "would be deleted" in held.stderr + held.stdout
        posts = webhook.wait_for(1)
        assert len(posts) == 1, posts
        text = alert_text(posts[0])
        check_alert(text, "object_1", "deletes held back in the store: 30 of 40 records", "held-back-delete")
        assert ("prefect deployment run sync/demo-object-1-prod --param full=true --param allow_mass_delete=true"
                in text), text

        # 2. a prod run that fails (Knack refuses the key)
        webhook.posts.clear()
        python({**env, "KNACK_API_KEY": SECRET + "-wrong"}, *sync, ok=False)
        posts = webhook.wait_for(1)
        assert len(posts) == 1, posts
        text = alert_text(posts[0])
        check_alert(text, "object_1", "the run ended Failed", "failed-crashed-or-timed-out-run")
        assert "HTTP 401" in text and "run: sync-demo-object_1-prod (" in text, text
        assert SECRET + "-wrong" not in text

        # 3. a full run cancelled while it runs (the state change an operator's cancel makes)
        webhook.posts.clear()
        flow_id = api(env, "POST", "/flows/", {"name": "sync"})["id"]
        run = api(env, "POST", "/flow_runs/", {
            "flow_id": flow_id, "name": "sync-demo-object_1-prod-full",
            "parameters": {"app": "demo", "container": "object_1", "env": "prod", "full": True},
            "state": {"type": "RUNNING", "name": "Running"}})
        api(env, "POST", f"/flow_runs/{run['id']}/set_state",
            {"state": {"type": "CANCELLED", "name": "Cancelled", "message": "cancelled by the operator"},
             "force": True})
        posts = webhook.wait_for(1)
        assert len(posts) == 1, posts
        check_alert(alert_text(posts[0]), "object_1", "the full run (reconcile) was cancelled", "cancelled-full-run")
    finally:
        knack.stop()
