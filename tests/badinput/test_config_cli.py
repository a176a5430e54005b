"""Bad config and bad command lines: one clear message each, and nothing written anywhere.

The container rules of the config file (unknown key, view without scene, malformed keys, ...) are
covered by ``tests/unit/test_config.py``; here are the rest of the file's rules, the rules that need
the app's metadata (checked when a run starts, before anything is written), and the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.sync import main as sync_main
from tasks.domain.config import load_config, parse_config
from tasks.domain.errors import ConfigError
from tests.faults.harness import Rig, error_of

OBJECT = {"modified_date_field_id": "field_27"}


def app_with(container: Any = None, **app: Any) -> dict[str, Any]:
    return {"apps": {"demo": {"containers": {"object_1": OBJECT if container is None else container}, **app}}}


@pytest.mark.unit
@pytest.mark.parametrize(("raw", "expected"), [
    (["apps"], "cfg.yaml: expected a mapping with 'apps' at the top level"),
    ({"apps": {"demo": ["object_1"]}}, "app 'demo': expected a mapping with a 'containers' mapping"),
    ({"apps": {"demo": {"rate_limit_per_second": 5}}}, "app 'demo': expected a mapping with a 'containers'"),
    (app_with(["field_27"]), "container 'object_1': expected a mapping"),
    ({"store": "ftp", "apps": {}}, "settings: store: Input should be 'auto', 's3' or 'local'"),
    ({"store_workers": 0, "apps": {}}, "settings: store_workers: Input should be greater than or equal to 1"),
    ({"store_workers": 500, "apps": {}}, "settings: store_workers: Input should be less than or equal to 128"),
    ({"agol_chunk_size": 0, "apps": {}}, "settings: agol_chunk_size"),
    ({"lock_ttl_seconds": 0, "apps": {}}, "settings: lock_ttl_seconds"),
    (app_with(rate_limit_per_second=1000), "app 'demo': rate_limit_per_second: Input should be less than or equal"),
    (app_with(quota_floor=-1), "app 'demo': quota_floor: Input should be greater than or equal to 0"),
    (app_with({**OBJECT, "layer_id": "zero"}), "container 'object_1': layer_id: Input should be a valid integer"),
    (app_with({**OBJECT, "no_replace_socrata": "maybe"}), "no_replace_socrata: Input should be a valid boolean"),
    (app_with({**OBJECT, "socrata_field_map": {"field_2": "id"}}), "socrata_field_map[field_2] cannot be 'id'"),
    (app_with({**OBJECT, "append_timestamp_column": "Published At"}), "append_timestamp_column must be"),
    (app_with({**OBJECT, "upsert_matching_field": "record id"}), "upsert_matching_field must be an ArcGIS field"),
    # types are strict: YAML's true/"yes"/"10" are not an integer, a boolean, a number
    (app_with({**OBJECT, "layer_id": True}), "layer_id: Input should be a valid integer, got True"),
    (app_with({**OBJECT, "no_replace_socrata": "yes"}), "no_replace_socrata: Input should be a valid boolean, got 'yes'"),
    (app_with(rate_limit_per_second="10"), "rate_limit_per_second: Input should be a valid number, got '10'"),
    ({"store_workers": 8.5, "apps": {}}, "settings: store_workers: Input should be a valid integer, got 8.5"),
    ({"store_workers": True, "apps": {}}, "settings: store_workers: Input should be a valid integer, got True"),
    # names are matched whole: a trailing newline or space is not the name
    ({"store": "local\n", "apps": {}}, "settings: store: Input should be 'auto', 's3' or 'local', got 'local\\n'"),
    ({"apps": {"demo\n": {"containers": {"object_1": OBJECT}}}}, "app 'demo\\n': app names are lower-case"),
    (app_with({**OBJECT, "modified_date_field_id": "field_27\n"}), "must be a Knack field key like field_12"),
    ({"apps": {"demo": {"containers": {"object_1 ": OBJECT}}}}, "container 'object_1 ': key must be object_N or view_N, got 'object_1 '"),
    (app_with({**OBJECT, "socrata_resource_id": "abcd-1234\n"}), "socrata_resource_id must be a Socrata dataset id like abcd-1234"),
    (app_with({**OBJECT, "socrata_field_map": {"field_2": "status\n"}}), "socrata_field_map[field_2] must be a lower-case"),
], ids=lambda v: "" if isinstance(v, str) else None)
def test_config_rule_names_what_to_fix(raw: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "cfg.yaml")
    assert str(err.value).startswith("cfg.yaml: "), err.value
    assert expected in str(err.value), err.value


@pytest.mark.unit
def test_a_container_written_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("apps:\n  demo:\n    containers:\n      object_1: {modified_date_field_id: field_27}\n"
                    "      object_1: {modified_date_field_id: field_39}\n")
    with pytest.raises(ConfigError, match=r"(?s)twice.yaml: not valid YAML: .*'object_1' appears twice.*line 5"):
        load_config(path)


# --- rules that need the app itself: checked when the run starts, before anything is written ------

@pytest.mark.integration
@pytest.mark.parametrize(("override", "expected"), [
    ({"modified_date_field_id": "field_99"}, "modified_date_field_id field_99 is not a field of it; its date "
                                             "fields: field_22, field_23, field_24, field_25, field_26, field_27"),
    ({"modified_date_field_id": "field_2"}, "modified_date_field_id field_2 is a short_text field"),
    ({"location_fields": ["field_2"]}, "location_fields entry field_2 is not an address field of it; its address "
                                       "fields: field_19, field_20"),
    ({"socrata_field_map": {"field_77": "x"}}, "socrata_field_map names field_77, not fields of it"),
    ({"socrata_field_map": {}}, "fields field_12 and field_13 ('STATUS') both become column 'status'"),
], ids=["modified-field-missing", "modified-field-not-a-date", "location-not-an-address", "field-map-unknown",
        "two-fields-one-column"])
def test_config_that_does_not_fit_the_app_fails_before_writing(make_rig, override: dict[str, Any],
                                                               expected: str) -> None:
    rig: Rig = make_rig(records=5)
    rig.rewrite_config("object_1", **override)
    state = rig.run()
    assert state.is_failed()
    assert f"demo/object_1: {expected}" in error_of(state), error_of(state)
    assert_nothing_written(rig)


@pytest.mark.integration
def test_a_container_the_app_does_not_have(make_rig) -> None:
    rig: Rig = make_rig(records=5)
    rig.rewrite_config("object_9", modified_date_field_id="field_27")
    state = rig.run("object_9")
    assert state.is_failed()
    assert "demo/object_9: container 'object_9' is not an object or view of app" in error_of(state), error_of(state)
    assert_nothing_written(rig)


# --- the command line --------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize(("argv", "expected"), [
    (["-d", "yesterday"], "sync failed: cannot read 'yesterday' as a date: use ISO-8601"),
    (["-d", "2024-02-30"], "sync failed: cannot read '2024-02-30' as a date"),
    (["-a", "data-tracker"], "sync failed: {config}: unknown app 'data-tracker' (configured apps: demo)"),
    (["-c", "object_9"], "sync failed: {config}: app 'demo' has no container 'object_9' (configured: object_1, object_3)"),
    (["-c", "view-1"], "sync failed: {config}: app 'demo' has no container 'view-1'"),
    (["--config", "{missing}"], "sync failed: cannot read config file {missing}: No such file or directory"),
    (["--only", "socrata", "-c", "object_3"], "sync failed: demo/object_3 does not publish to socrata "
                                              "(configured: agol)"),
], ids=["date-word", "date-impossible", "unknown-app", "unknown-container", "malformed-container", "no-config",
        "only-unconfigured-destination"])
def test_cli_says_what_is_wrong_and_exits_1(make_rig, capsys, tmp_path: Path, argv: list[str], expected: str) -> None:
    rig: Rig = make_rig(records=5, containers=("object_1", "object_3"))
    missing = str(tmp_path / "nope.yaml")
    args = {"-a": "demo", "-c": "object_1", "-e": "dev", "--config": str(rig.config_path)}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        args[flag] = value.format(missing=missing)
    code = sync_main([part for pair in args.items() for part in pair])
    err = capsys.readouterr().err
    rig.texts.append(err)
    assert code == 1
    assert expected.format(config=rig.config_path, missing=missing) in err, err
    assert_nothing_written(rig)


@pytest.mark.unit
@pytest.mark.parametrize("argv", [["-e", "staging"], ["-e", ""]], ids=["env-staging", "env-empty"])
def test_cli_refuses_an_unknown_env_before_starting(capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        sync_main(["-a", "demo", "-c", "object_1", *argv])
    assert exited.value.code == 2
    assert f"argument -e/--env: invalid choice: '{argv[1]}' (choose from" in capsys.readouterr().err


@pytest.mark.integration
def test_flow_parameters_are_checked_like_the_cli(make_rig) -> None:
    rig: Rig = make_rig(records=5)
    state = rig.run(env="staging")  # the flow's parameter types: env is a dev/prod choice, since a datetime
    assert state.is_failed() and "Input should be 'dev' or 'prod'" in error_of(state), error_of(state)
    state = rig.run(since="13/45/2024")
    assert state.is_failed() and "Input should be a valid datetime" in error_of(state), error_of(state)
    assert_nothing_written(rig)


def assert_nothing_written(rig: Rig) -> None:
    """No object in the bucket, no row in any dataset, no feature in any layer."""
    assert rig.all_keys() == [], rig.all_keys()[:5]
    for key in rig.containers:
        cfg = rig.container(key)
        if cfg.socrata_resource_id:
            assert rig.socrata_rows(key) == []
        if cfg.service_id:
            assert rig.agol_features(key) == []
