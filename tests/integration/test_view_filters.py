"""A view's filter honoured: a record edited out of a view's filter leaves the view's store and dataset
(never the object's), confirmed by a second whole listing of the view, whatever the view's record route
answers for it."""

from __future__ import annotations

from typing import Any

import pytest

from flows.sync import sync
from tests.fixtures.pipeline import Pipeline

pytestmark = pytest.mark.integration

OBJECT, VIEW, SCENE = "object_1", "view_1", "scene_1"


def run(p: Pipeline, container: str, **kwargs: Any) -> dict[str, Any]:
    return sync(app=p.app, container=container, env=p.env, config_path=str(p.config_path), **kwargs)


def rows(p: Pipeline, key: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: {k: v for k, v in r.items() if k != "published_at"}
            for r in p.socrata.rows(p.container(key).socrata_resource_id)}


@pytest.mark.parametrize("honours_filter", [False, True], ids=["route-answers-200", "route-answers-404"])
def test_records_edited_out_of_a_view_leave_its_dataset_and_store(pipeline: Pipeline, honours_filter: bool) -> None:
    p = pipeline
    p.knack.set_view_filter(SCENE, VIEW, [{"field": "field_2", "operator": "is not", "value": "Removed"}])
    p.knack.set_view_record_route(honours_filter)
    run(p, VIEW)
    run(p, OBJECT)
    ids = p.knack_ids(OBJECT)
    assert p.stored_ids(VIEW) == ids and sorted(rows(p, VIEW)) == ids
    out = ids[5:8]
    for rid in out:
        p.knack.update_record(OBJECT, rid, {"field_2": "Removed"})
    view_before, object_before = rows(p, VIEW), rows(p, OBJECT)

    nights = []
    for _ in range(2):  # within two nightly (full) runs
        nights.append(run(p, VIEW, full=True))
        run(p, OBJECT, full=True)
        if not set(out) & set(p.stored_ids(VIEW)):
            break
    kept = sorted(set(ids) - set(out))
    assert p.stored_ids(VIEW) == kept and sorted(rows(p, VIEW)) == kept
    assert nights[0]["store"]["confirmed_by"] == "listing"
    assert sum(n["store"]["deleted"] for n in nights) == 3
    # no other row moved: the view's other rows as they were; the object keeps all, the 3 edited
    after = rows(p, VIEW)
    assert all(after[rid] == view_before[rid] for rid in kept)
    assert p.stored_ids(OBJECT) == ids and sorted(rows(p, OBJECT)) == ids and p.agol_ids(OBJECT) == ids
    object_after = rows(p, OBJECT)
    assert all(object_after[rid]["location_name"] == "Removed" for rid in out)
    assert all(object_after[rid] == object_before[rid] for rid in kept)
