"""Delete look-ups within the quota: checked against the app's quota_floor before they start, capped per
run (``delete_lookups_per_run``), and beyond either, candidates confirmed by a second whole listing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flows.sync import sync
from tasks.domain.quota import Schedule, project
from tests.fixtures.pipeline import Pipeline
from tests.integration.test_delete_safety import KEY, agol_deleted, assert_converged, socrata_deleted

pytestmark = pytest.mark.integration


def run(p: Pipeline, **kwargs: Any) -> dict[str, Any]:
    return sync(app=p.app, container=KEY, env=p.env, config_path=str(p.config_path), **kwargs)


def configure(p: Pipeline, app: dict[str, Any] | None = None, **settings: Any) -> None:
    raw = yaml.safe_load(p.config_path.read_text())
    raw.update(settings)
    raw["apps"][p.app].update(app or {})
    p.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_hundred_deletes_of_three_hundred_with_a_low_quota_never_cross_the_floor(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    before = set(p.knack_ids(KEY))
    doomed = p.knack_ids(KEY)[:100]
    for rid in doomed:
        p.knack.delete_record(KEY, rid)
    floor = 100
    # the cap allows 100 look-ups, but 101 requests would leave 150 - 2 - 101 = 47 of the day's quota,
    # below the floor of 100: a second listing (1 page) confirms the candidates instead
    configure(p, {"quota_floor": floor}, delete_lookups_per_run=200)
    nights = []
    for _ in range(2):  # each night a new day's quota
        p.knack.set_limits(rate_limit_per_second=50, daily_quota=150)
        nights.append(run(p, full=True, allow_mass_delete=True))
        left = p.knack.counters()["quota_remaining"]
        assert left is not None and left >= floor, f"the run left {left} of the quota, below the floor {floor}"
        if set(p.stored_ids(KEY)) == set(p.knack_ids(KEY)):
            break
    assert sum(n["store"]["deleted"] for n in nights) == 100
    assert nights[0]["store"]["confirmed_by"] == "listing"
    assert nights[0]["store"]["lookups"] == 1  # one page, not 101 requests
    assert socrata_deleted(p) == set(doomed) and agol_deleted(p) == set(doomed)
    assert_converged(p, ever_live=before - set(doomed))


def test_a_few_deletes_are_looked_up_one_by_one(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    gone = p.knack_ids(KEY)[:3]
    for rid in gone:
        p.knack.delete_record(KEY, rid)
    full = run(p, full=True)
    assert full["store"]["deleted"] == 3
    assert full["store"]["confirmed_by"] == "lookups" and full["store"]["lookups"] == 3 + 1
    assert_converged(p)


def test_a_quota_too_low_for_either_confirmation_holds_the_deletes_back_and_fails_nothing_else(
        pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    gone = p.knack_ids(KEY)[:3]
    for rid in gone:
        p.knack.delete_record(KEY, rid)
    edited = p.knack.edit_random(KEY, 2, seed=3)
    configure(p, {"quota_floor": 100})
    p.knack.set_limits(rate_limit_per_second=50, daily_quota=101)  # the listing leaves 100: no request more
    with pytest.raises(Exception, match=r"3 records are missing from the listing.*nothing was deleted"):
        run(p, full=True)
    assert p.knack.counters()["quota_remaining"] >= 100
    assert set(gone) <= set(p.stored_ids(KEY))  # nothing deleted
    rows = {r["id"]: r for r in p.socrata.rows(p.container(KEY).socrata_resource_id)}
    stored = {r["id"]: r for r in p.knack.records(KEY)}
    assert all(rows[rid]["location_name"] == stored[rid]["field_2"] for rid in edited)  # the rest went on
    p.knack.set_limits(rate_limit_per_second=50, daily_quota=None)  # the next day
    run(p, full=True)
    assert_converged(p)


def test_an_app_copy_every_id_new_stays_within_the_quota_plan(pipeline: Pipeline) -> None:
    p = pipeline
    run(p)
    old = p.knack_ids(KEY)
    for rid in old:  # a copy of the app: the same rows under new record ids
        p.knack.delete_record(KEY, rid)
    for _ in range(300):
        p.knack.create_record(KEY)
    config = p.config
    (plan,) = project(config, {(p.app, KEY): [Schedule(1, True)]}, {(p.app, KEY): len(old)}, apps=[p.app])
    (cost,) = [c for c in plan.containers if c.container == KEY]
    p.knack.reset_counters()
    full = run(p, full=True, allow_mass_delete=True)
    spent = p.knack.counters()["requests"]
    assert full["store"]["deleted"] == 300 and full["store"]["written"] == 300
    assert full["store"]["confirmed_by"] == "listing"  # 300 candidates, more than the cap of 50
    assert spent <= cost.pages + cost.confirm + 1, f"{spent} Knack requests; the plan allows {cost.requests} + 1"
    assert_converged(p, ever_live=set())
