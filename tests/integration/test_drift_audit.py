"""The verifying reconcile (drift audit): the nightly ``--full`` reads back what Socrata and ArcGIS hold,
compares each row with the digest of what it was last sent, and repairs rows edited or deleted there by
hand; after no change it sends nothing."""

from __future__ import annotations

from typing import Any

import pytest

from flows.sync import sync
from tests.fixtures.pipeline import Pipeline
from tests.integration.test_delete_safety import KEY, stored

pytestmark = pytest.mark.integration


def run(p: Pipeline, **kwargs: Any) -> dict[str, Any]:
    return sync(app=p.app, container=KEY, env=p.env, config_path=str(p.config_path), **kwargs)


def socrata_writes(p: Pipeline) -> list[dict[str, Any]]:
    resource = p.container(KEY).socrata_resource_id
    return [e for e in p.socrata.requests if e["method"] in ("POST", "PUT", "DELETE") and resource in e["path"]]


def arcgis_edits(p: Pipeline) -> list[dict[str, Any]]:
    return [e for e in p.arcgis.requests if "applyEdits" in e["path"] or "deleteFeatures" in e["path"]
            or "addFeatures" in e["path"] or "updateFeatures" in e["path"]]


def text_attribute(p: Pipeline) -> str:
    """A text attribute of the layer fed by a Knack field (not the record id)."""
    cfg = p.container(KEY)
    attributes = p.arcgis.features(cfg.service_id, cfg.layer_id)[0]["attributes"]
    return next(k for k, v in attributes.items() if isinstance(v, str) and k.lower() not in
                (cfg.upsert_matching_field.lower(), "globalid") and v and not v.startswith("{"))


def test_a_no_change_reconcile_reads_but_sends_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    p.socrata.reset_log()
    p.arcgis.reset_log()
    full = run(p, full=True)
    for name in ("socrata", "agol"):
        result = full["published"][name]
        assert result["upserted"] == 0 and result["deleted"] == 0, (name, result)
        assert result["held"] == 300 and result["differed"] == 0 and result["missing"] == 0, (name, result)
    assert not socrata_writes(p) and not arcgis_edits(p)
    assert any(e["method"] == "GET" for e in p.socrata.requests)  # it did read the rows back


def test_rows_edited_or_deleted_by_hand_are_repaired_by_the_next_nightly_run(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    cfg = p.container(KEY)
    ids = p.knack_ids(KEY)
    edited, removed = ids[3], ids[4]
    p.socrata.edit_row(cfg.socrata_resource_id, {"id": edited, "location_name": "Edited By Hand"})
    p.socrata.remove_row(cfg.socrata_resource_id, removed)
    name = text_attribute(p)
    p.arcgis.edit_feature(cfg.service_id, cfg.layer_id, cfg.upsert_matching_field, edited, {name: "Edited By Hand"})
    p.arcgis.remove_feature(cfg.service_id, cfg.layer_id, cfg.upsert_matching_field, removed)
    assert removed not in p.socrata_ids(KEY) and removed not in p.agol_ids(KEY)

    hourly = run(p)  # an incremental run knows nothing of it
    assert hourly["published"]["socrata"]["upserted"] == 0

    full = run(p, full=True)
    for place in ("socrata", "agol"):
        result = full["published"][place]
        assert (result["differed"], result["missing"], result["upserted"]) == (1, 1, 2), (place, result)
    rows = {r["id"]: r for r in p.socrata.rows(cfg.socrata_resource_id)}
    assert rows[edited]["location_name"] == stored(p, KEY, edited)["field_2"]
    features = {f["attributes"][cfg.upsert_matching_field]: f["attributes"]
                for f in p.arcgis.features(cfg.service_id, cfg.layer_id)}
    assert features[edited][name] != "Edited By Hand"
    assert p.socrata_ids(KEY) == p.knack_ids(KEY) and p.agol_ids(KEY) == p.knack_ids(KEY)

    again = run(p, full=True)  # repaired: the next reconcile finds nothing
    assert again["published"]["socrata"]["upserted"] == 0 and again["published"]["agol"]["upserted"] == 0


def test_a_stray_row_added_by_hand_goes_once_knack_confirms_it_gone(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    cfg = p.container(KEY)
    stray = "5f0000000000000000000000"  # a record id Knack never had
    p.socrata.edit_row(cfg.socrata_resource_id, {"id": stray, "location_name": "Added By Hand"})
    first = run(p, full=True)  # one listing's evidence: a candidate, not a delete
    assert stray in p.socrata_ids(KEY) and first["published"]["socrata"]["strays"] == 0
    second = run(p, full=True)  # the offload asked Knack (404): recorded as deleted, then deleted there
    assert second["store"]["lookups"] == 2 and second["store"]["deleted"] == 1
    assert stray not in p.socrata_ids(KEY)
    assert p.socrata_ids(KEY) == p.knack_ids(KEY) and p.stored_ids(KEY) == p.knack_ids(KEY)
