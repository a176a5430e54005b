"""Real clients against the emulator: unmodified knackpy, a replay of the shared real app, the CLI.

knackpy builds every URL with the module-level ``knackpy.api._url(route=..., slug=...)``
(``https://{slug}-api.knack.com/v1{route}``). The tests aim it at the emulator by monkeypatching
that one function for the duration of a test; knackpy's own code is not modified.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import knackpy
import knackpy.api
import pytest
import requests

from emulators.knack import KnackEmulator, load_app_file
from tests.fixtures import KNACKPY_TEST_APP

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No API key:UserWarning")]

FIXTURE = KNACKPY_TEST_APP


@pytest.fixture
def knackpy_to(monkeypatch: pytest.MonkeyPatch) -> Any:
    def aim(emu: KnackEmulator) -> None:
        monkeypatch.setattr(knackpy.api, "_url", lambda *, route, slug=None: emu.api_url + route)
    return aim


def test_unmodified_knackpy_reads_metadata_and_records(knack_emulator: KnackEmulator, knackpy_to: Any) -> None:
    knackpy_to(knack_emulator)
    app = knackpy.App(app_id=knack_emulator.app_id, api_key=knack_emulator.api_key)
    assert app.metadata["name"] == "Signal Operations" and app.slug == "cityops"
    records = app.get("object_1")
    assert len(records) == 200
    first = records[0].format()
    assert first["Signal ID"] == 1 and first["Modified Date"].endswith(("-05:00", "-06:00"))
    view = app.get("view_1")
    assert len(view) == 200 and set(view[0].format()) == {
        "id", "Signal ID", "ID", "Location Name", "Status", "STATUS", "Approaches", "Pedestrian Signal", "Location",
        "Corridor", "Date/Time - Start", "Modified Date"}
    assert knack_emulator.counters()["metadata"] == 1


def test_knackpy_formats_records_from_stored_metadata(knack_emulator: KnackEmulator, knackpy_to: Any) -> None:
    knackpy_to(knack_emulator)
    metadata = knackpy.api.get_metadata(app_id=knack_emulator.app_id)
    raw = knackpy.api.get(app_id=knack_emulator.app_id, api_key=knack_emulator.api_key, obj="object_1",
                          filters={"match": "and", "rules": [{"field": "field_6", "operator": "higher than",
                                                              "value": 6}]})
    assert raw and all(r["field_6"] > 6 for r in raw)
    app = knackpy.App(app_id=knack_emulator.app_id, metadata=copy.deepcopy(metadata))
    # knackpy formats what it already holds, without another request; it rewrites the nested date
    # dicts in place (local-as-UTC -> true UTC), so it gets a copy
    app.data["object_1"] = copy.deepcopy(raw)
    formatted = [record.format() for record in app.get("object_1")]
    assert len(formatted) == len(raw)
    by_id = {r["id"]: r for r in raw}
    for row in formatted:
        source = by_id[row["id"]]
        assert row["Lane Count"] == source["field_6"]
        # knackpy turns the local-as-UTC stamp back into the same wall time, now with an offset
        wall = datetime.fromtimestamp(source["field_27_raw"]["unix_timestamp"] / 1000, UTC)
        assert row["Modified Date"][:16] == wall.strftime("%Y-%m-%dT%H:%M")
        assert row["Modified Date"][16:] in (":00-05:00", ":00-06:00")


def test_knackpy_writes_through_the_emulator(knack_emulator: KnackEmulator, knackpy_to: Any) -> None:
    knackpy_to(knack_emulator)
    kwargs = {"app_id": knack_emulator.app_id, "api_key": knack_emulator.api_key, "obj": "object_2"}
    created = knackpy.api.record(data={"field_33": "Lamar Corridor"}, method="create", **kwargs)
    updated = knackpy.api.record(data={"id": created["id"], "field_35": 3.5}, method="update", **kwargs)
    assert updated["field_33"] == "Lamar Corridor" and updated["field_35_raw"] == 3.5
    assert knackpy.api.record(data={"id": created["id"]}, method="delete", **kwargs) == {"delete": True}


def _fixture_app(tmp_path: Path) -> Path:
    metadata = json.loads((FIXTURE / "metadata.json").read_text())
    records = json.loads((FIXTURE / "records-object_3.json").read_text())["records"]
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"metadata": metadata, "records": {"object_3": records}}))
    return path


def test_replays_the_real_fixture_app(tmp_path: Path, knackpy_to: Any) -> None:
    app = load_app_file(_fixture_app(tmp_path))
    expected = json.loads((FIXTURE / "records-object_3.json").read_text())["records"]
    with KnackEmulator(app, rate_limit_per_second=None) as emu:
        assert emu.app_id == "5d79512148c4af00106d1507"
        headers = {"X-Knack-Application-Id": emu.app_id, "X-Knack-REST-API-KEY": emu.api_key}
        body = requests.get(f"{emu.api_url}/objects/object_3/records", headers=headers, timeout=10,
                            params={"rows_per_page": 1000}).json()
        assert body["records"] == sorted(expected, key=lambda r: r["field_11"])
        view = requests.get(f"{emu.api_url}/pages/scene_1/views/view_6/records", timeout=10,
                            headers={"X-Knack-Application-Id": emu.app_id}).json()
        assert view["total_records"] == 25
        assert "field_125" not in view["records"][0] and "field_7" in view["records"][0]
        locked = requests.get(f"{emu.api_url}/pages/scene_6/views/view_18/records", timeout=10,
                              headers={"X-Knack-Application-Id": emu.app_id})
        assert locked.status_code == 403  # an authenticated scene
        knackpy_to(emu)
        records = knackpy.App(app_id=emu.app_id, api_key=emu.api_key).get("object_3")
        assert len(records) == 25 and records[0].format()["Short Text"] == "hello"


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen([sys.executable, "-m", "emulators", "knack", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail(f"emulator did not start: {process.stderr.read() if process.stderr else ''}")
    return process, json.loads(line)


@pytest.mark.parametrize("source", ["generated", "file"])
def test_cli_prints_ready_line_and_serves(tmp_path: Path, source: str) -> None:
    args = ["--records", "30", "--seed", "2", "--api-key", "k-123"] if source == "generated" else [
        "--app", str(_fixture_app(tmp_path)), "--daily-quota", "100"]
    process, ready = _start_cli(*args)
    try:
        assert {"url", "port", "app_id", "api_key", "api_url"} <= set(ready)
        headers = {"X-Knack-Application-Id": ready["app_id"], "X-Knack-REST-API-KEY": ready["api_key"]}
        obj = "object_1" if source == "generated" else "object_3"
        response = requests.get(f"{ready['api_url']}/objects/{obj}/records", headers=headers, timeout=10)
        assert response.status_code == 200
        assert response.json()["total_records"] == (30 if source == "generated" else 25)
        if source == "generated":
            assert ready["api_key"] == "k-123"
        else:
            assert response.headers["X-PlanLimit-Remaining"] == "99"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
