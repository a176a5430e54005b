"""Knack misbehaving: 5xx, 429 storms, hangs past the timeout, dropped connections, the quota floor.

Every case ends with a converged run: store, Socrata and ArcGIS hold exactly Knack's records.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import Rig, error_of

pytestmark = pytest.mark.integration


def test_thirty_percent_5xx_then_converged(make_rig) -> None:
    rig: Rig = make_rig(records=120, page_rows=10)
    rig.knack.set_faults(error_rate=0.3, error_status=503, seed=5)
    state = rig.run()
    assert state.is_completed(), error_of(state)
    assert rig.knack.counters()["by_status"].get("503", 0) >= 3  # faults really happened
    rig.knack.edit_random("object_1", 9, seed=2)
    rig.ok()
    rig.knack.set_faults()
    rig.ok()
    rig.assert_converged()
