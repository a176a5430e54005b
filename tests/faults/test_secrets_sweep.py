"""Last in this directory: no secret in any log line the Prefect API stored for the fault suite's runs
(each test's own logs, errors, artifacts and stored objects are swept when it ends)."""

from __future__ import annotations

import pytest

from tests.faults.harness import SECRETS, api_log_text

pytestmark = pytest.mark.integration


def test_no_secret_in_any_log_the_prefect_api_stored(prefect_harness: None) -> None:
    text = api_log_text()
    assert text, "the API should hold the suite's run logs"
    assert not [s for s in SECRETS if s in text]
