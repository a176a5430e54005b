"""The migration kit: the seed's ``services/config/knack.py`` becomes this project's config; what cannot be
carried over is refused by app, container and key, and the seed's file is never run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scripts.import_seed_config import main, read_seed
from tasks.domain.config import load_config
from tasks.domain.errors import ConfigError

pytestmark = pytest.mark.unit

SEED = '''\
"""Knack container config (the seed's services/config/knack.py)."""
# a comment the importer ignores
CONFIG = {
    "data-tracker": {
        "view_197": {
            "description": "Signal locations",
            "scene_id": "scene_75",
            "modified_date_field_id": "field_205",
            "socrata_resource_id": "p53x-x73x",
            "location_fields": ["field_182"],
            "service_id": "e6eb5a8f3a8a4d5f9a1b2c3d4e5f6a7b",
            "layer_id": 0,
            "upsert_matching_field": "id",
            "item_type": "layer",
        },
        "object_11": {
            "modified_date_field_id": "field_2300",
            "socrata_resource_id": "abcd-1234",
        },
    },
    "signs-markings": {
        "view_3100": {"scene_id": "scene_1249", "modified_date_field_id": "field_3300", "layer_id": 1,
                      "service_id": "0123456789abcdef0123456789abcdef"},
    },
}
'''


def test_a_seed_config_becomes_a_config_that_loads_with_every_property(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    seed, out = tmp_path / "knack.py", tmp_path / "knack-services.yaml"
    seed.write_text(SEED)
    assert main([str(seed), "-o", str(out)]) == 0
    config = load_config(out)
    view = config.container("data-tracker", "view_197")
    assert (view.description, view.scene_id, view.modified_date_field_id) == ("Signal locations", "scene_75", "field_205")
    assert (view.socrata_resource_id, view.location_fields) == ("p53x-x73x", ("field_182",))
    assert (view.service_id, view.layer_id, view.upsert_matching_field, view.agol_kind) == (
        "e6eb5a8f3a8a4d5f9a1b2c3d4e5f6a7b", 0, "id", "layer")
    assert view.destinations() == ["socrata", "agol"]
    assert config.container("data-tracker", "object_11").destinations() == ["socrata"]
    assert config.container("signs-markings", "view_3100").layer_id == 1
    assert sorted(config.apps) == ["data-tracker", "signs-markings"]
    err = capsys.readouterr().err
    assert "wrote" in err and "3 containers of 2 app(s)" in err
    assert "KNACK_APP_ID=$APP_ID KNACK_API_KEY=$API_KEY python -m tasks.save_blocks --env prod" in err


def test_unknown_keys_and_bad_values_are_refused_by_app_container_and_key(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = SEED.replace('"item_type": "layer",', '"item_type": "layer", "dest_apps": ["x"],').replace(
        '"socrata_resource_id": "abcd-1234",', '"socrata_resource_id": "not-a-dataset-id",')
    seed, out = tmp_path / "knack.py", tmp_path / "knack-services.yaml"
    seed.write_text(bad)
    assert main([str(seed), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "app 'data-tracker', container 'view_197', key 'dest_apps': not a seed container property" in err, err
    assert "app 'data-tracker', container 'object_11': socrata_resource_id must be a Socrata dataset id like abcd-1234, got 'not-a-dataset-id'" in err
    assert "nothing written" in err and not out.exists()


def test_a_view_without_its_scene_is_refused_naming_the_container(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seed = tmp_path / "knack.py"
    seed.write_text(SEED.replace('"scene_id": "scene_1249", ', ""))
    assert main([str(seed)]) == 1
    assert "app 'signs-markings', container 'view_3100'" in capsys.readouterr().err


def test_the_seed_file_is_parsed_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    seed = tmp_path / "knack.py"
    seed.write_text(f"open({str(marker)!r}, 'w').close()\nCONFIG = {{'a': {{}}}}\n")
    assert read_seed(seed) == {"a": {}}
    assert not marker.exists()
    seed.write_text(f"CONFIG = {{'a': open({str(marker)!r}, 'w')}}\n")
    with pytest.raises(ConfigError, match=r"line 1: CONFIG is not a literal"):
        read_seed(seed)
    assert not marker.exists()
    seed.write_text("BUCKET = 'x'\n")
    with pytest.raises(ConfigError, match="no top-level CONFIG"):
        read_seed(seed)


def test_the_written_file_is_what_the_docs_show(tmp_path: Path) -> None:
    seed, out = tmp_path / "knack.py", tmp_path / "out.yaml"
    seed.write_text(SEED)
    assert main([str(seed), "-o", str(out)]) == 0
    raw = yaml.safe_load(out.read_text())
    assert raw["store"] == "s3" and raw["bucket"] == "atd-knack-services"
    assert raw["apps"]["data-tracker"]["containers"]["object_11"] == {"modified_date_field_id": "field_2300",
                                                                      "socrata_resource_id": "abcd-1234"}
