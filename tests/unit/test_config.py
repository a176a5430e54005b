"""The container config: every validation rule names the file, app, container and key to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.domain.config import Settings, check_env, load_config, parse_config
from tasks.domain.errors import ConfigError

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "bucket": "atd-knack-services",
    "apps": {
        "data-tracker": {
            "containers": {
                "object_11": {"modified_date_field_id": "field_12", "socrata_resource_id": "abcd-1234",
                              "location_fields": ["field_5"], "service_id": "0f3c", "layer_id": 1},
                "view_197": {"scene_id": "scene_73", "modified_date_field_id": "field_12"},
            }
        }
    },
}


def with_container(key: str, body: Any) -> dict[str, Any]:
    return {"apps": {"data-tracker": {"containers": {key: body}}}}


def test_good_config_loads_with_seed_properties() -> None:
    config = parse_config(GOOD, "knack.yaml")
    obj = config.container("data-tracker", "object_11")
    assert obj.socrata_resource_id == "abcd-1234"
    assert obj.location_fields == ("field_5",)
    assert obj.destinations() == ["socrata", "agol"]
    assert obj.upsert_matching_field == "id"
    view = config.container("data-tracker", "view_197")
    assert view.scene_id == "scene_73" and view.destinations() == []
    assert config.settings.bucket == "atd-knack-services"


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        ("object_11", {"modified_date_field_id": "field_12", "socrata_id": "x"}, "socrata_id: unknown key"),
        ("view_197", {"modified_date_field_id": "field_12"}, "set scene_id"),
        ("objekt_11", {"modified_date_field_id": "field_12"}, "object_N or view_N"),
        ("view_1", {"scene_id": "page_3", "modified_date_field_id": "field_12"}, "scene_id must be"),
        ("object_11", {"modified_date_field_id": "modified"}, "modified_date_field_id must be"),
        ("object_11", {}, "modified_date_field_id: Field required"),
        ("object_11", {"modified_date_field_id": "field_1", "location_fields": ["loc"]}, "location_fields"),
        ("object_11", {"modified_date_field_id": "field_1", "socrata_field_map": {"name": "x"}},
         "socrata_field_map key"),
        ("object_11", {"modified_date_field_id": "field_1", "socrata_field_map": {"field_2": "Bad Name"}},
         "socrata_field_map[field_2]"),
        ("object_11", {"modified_date_field_id": "field_1", "socrata_resource_id": "ABCD"}, "abcd-1234"),
        ("object_11", {"modified_date_field_id": "field_1", "agol_kind": "map"}, "agol_kind"),
        ("object_11", {"modified_date_field_id": "field_1", "scene_id": "scene_2"}, "views only"),
    ],
)
def test_bad_container_names_file_app_container_and_key(key: str, body: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_container(key, body), "cfg.yaml")
    message = str(err.value)
    assert message.startswith("cfg.yaml: app 'data-tracker', container ")
    assert repr(key) in message
    assert expected in message


def test_unknown_top_level_key_and_bad_settings() -> None:
    with pytest.raises(ConfigError, match="unknown top-level key.*buckets"):
        parse_config({"buckets": "x", "apps": {}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="settings: socrata_chunk_size"):
        parse_config({"socrata_chunk_size": 0, "apps": {}}, "cfg.yaml")
    for bad in ("weekly", "37 3 * *", "37 3 * * 0 1", "37  3 * * 0", 7):
        with pytest.raises(ConfigError, match="settings: republish_cron"):
            parse_config({"republish_cron": bad, "apps": {}}, "cfg.yaml")
    assert parse_config({"republish_cron": "*/15 3 1-7 * SUN", "apps": {}}, "cfg.yaml").settings.republish_cron


@pytest.mark.parametrize(("setting", "bad", "expected"), [
    ("republish_cron", "37 3 * *", "settings: republish_cron must be a cron line of five fields (minute hour day "
                                   "month weekday), e.g. '37 3 * * 0' for Sundays at 03:37, got '37 3 * *'"),
    ("alert_block", "knack-alerts", "settings: alert_block must be a Prefect block as <block-type-slug>/"
                                    "<block-name>, e.g. slack-webhook/knack-alerts, got 'knack-alerts'"),
])
def test_a_setting_of_the_wrong_shape_is_refused_in_words(setting: str, bad: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({setting: bad, "apps": {}}, "cfg.yaml")
    assert str(err.value) == f"cfg.yaml: {expected}"


def test_a_key_with_other_digits_than_ascii_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"modified_date_field_id must be a Knack field key like field_12"):
        parse_config(with_container("object_11", {"modified_date_field_id": "field_\u0661\u0662"}), "cfg.yaml")
    with pytest.raises(ConfigError, match=r"key must be object_N or view_N"):
        parse_config(with_container("object_\u0661", {"modified_date_field_id": "field_1"}), "cfg.yaml")


def test_every_setting_is_described() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undocumented == []


def test_bad_app_names_and_settings() -> None:
    with pytest.raises(ConfigError, match="app 'Data Tracker'"):
        parse_config({"apps": {"Data Tracker": {"containers": {}}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="app 'x': rate_limit_per_second"):
        parse_config({"apps": {"x": {"rate_limit_per_second": 0, "containers": {}}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="app 'x': rate_limits: unknown key"):
        parse_config({"apps": {"x": {"rate_limits": 5, "containers": {}}}}, "cfg.yaml")


def test_unknown_app_or_container_lists_what_is_configured() -> None:
    config = parse_config(GOOD, "knack.yaml")
    with pytest.raises(ConfigError, match=r"knack.yaml: unknown app 'signals' \(configured apps: data-tracker\)"):
        config.app("signals")
    with pytest.raises(ConfigError, match=r"no container 'object_1' \(configured: object_11, view_197\)"):
        config.container("data-tracker", "object_1")


def test_load_from_env_var_and_explicit_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    monkeypatch.setenv("KNACK_SERVICES_CONFIG", str(path))
    assert load_config().path == str(path)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"bucket": None, "apps": {}}))
    assert load_config(other).settings.bucket is None


def test_unreadable_or_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apps: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_env_is_prod_or_dev() -> None:
    assert check_env("prod") == "prod"
    with pytest.raises(ConfigError, match="env must be 'prod' or 'dev', got 'test'"):
        check_env("test")


def test_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "knack-services.yaml")
    assert "demo" in config.apps
    assert config.app("demo").containers
