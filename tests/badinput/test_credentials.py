"""Credentials missing or wrong, for each system: a message naming what to fix, no secret in it, and
nothing written where the credential was needed (the other destination still publishes)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials
from tests.faults.harness import AGOL_USER, SOCRATA_USER, WRONG_SECRET, Rig, error_of

pytestmark = pytest.mark.integration


def assert_store_untouched(rig: Rig) -> None:
    assert rig.all_keys() == [], rig.all_keys()[:5]
    assert rig.socrata_rows() == [] and rig.agol_features() == []


def assert_only_destination_failed(rig: Rig, failed: str) -> None:
    """The store and the other destination are complete; ``failed`` got nothing and kept its cursor."""
    other = {"socrata": "agol", "agol": "socrata"}[failed]
    knack = rig.knack_ids("object_1")
    assert rig.stored_ids("object_1") == knack
    assert (rig.socrata_ids if other == "socrata" else rig.agol_ids)("object_1") == knack
    assert (rig.socrata_rows() if failed == "socrata" else rig.agol_features()) == []
    assert rig.cursors()[failed] is None and rig.cursors()[other] is not None


@pytest.mark.parametrize(("block_type", "block", "expected"), [
    (KnackCredentials, "knack-demo-dev", "no KnackCredentials block named 'knack-demo-dev', and the environment "
                                         "lacks KNACK_APP_ID, KNACK_API_KEY"),
    (SocrataCredentials, "socrata-dev", "no SocrataCredentials block named 'socrata-dev', and the environment "
                                        "lacks SOCRATA_DOMAIN, SOCRATA_USERNAME, SOCRATA_PASSWORD"),
    (ArcGISCredentials, "agol-dev", "no ArcGISCredentials block named 'agol-dev', and the environment lacks "
                                    "AGOL_USERNAME, AGOL_PASSWORD"),
], ids=["knack", "socrata", "agol"])
def test_missing_credentials_name_the_block_and_the_variables(make_rig, block_type: Any, block: str,
                                                              expected: str) -> None:
    rig: Rig = make_rig(records=10)
    block_type.delete(block)
    state = rig.run()
    assert state.is_failed()
    assert expected in error_of(state), error_of(state)
    if block_type is KnackCredentials:
        assert_store_untouched(rig)
    else:
        assert_only_destination_failed(rig, "socrata" if block_type is SocrataCredentials else "agol")


def test_wrong_knack_key_is_a_401_naming_app_and_container(make_rig) -> None:
    rig: Rig = make_rig(records=10)
    KnackCredentials(app_id=rig.knack.app_id, api_key=WRONG_SECRET, api_url=rig.knack.api_url).save(
        "knack-demo-dev", overwrite=True)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert ("Knack refused the request: HTTP 401: Unauthorized Object Access; check the API key (block "
            "knack-demo-<env>, or KNACK_API_KEY) (app demo, container object_1, url /objects/object_1/records)"
            ) in message, message
    assert_store_untouched(rig)


def test_wrong_knack_app_id_is_refused(make_rig) -> None:
    rig: Rig = make_rig(records=10)
    KnackCredentials(app_id="0" * 24, api_key=rig.knack.api_key, api_url=rig.knack.api_url).save(
        "knack-demo-dev", overwrite=True)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    # the metadata may come from the hour-long cache; either way the records route refuses the id
    assert "HTTP 401: Unauthorized Object Access" in message or "HTTP 404: Application not found" in message, message
    assert_store_untouched(rig)


def test_wrong_socrata_password_is_a_401_and_arcgis_still_publishes(make_rig) -> None:
    rig: Rig = make_rig(records=10)
    SocrataCredentials(domain=rig.socrata.url, username=SOCRATA_USER, password=WRONG_SECRET).save(
        "socrata-dev", overwrite=True)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "publishing to socrata failed" in message and "HTTP 401: Invalid username or password" in message, message
    assert_only_destination_failed(rig, "socrata")


def test_wrong_arcgis_password_fails_the_sign_in_and_socrata_still_publishes(make_rig) -> None:
    rig: Rig = make_rig(records=10)
    ArcGISCredentials(url=rig.arcgis.portal_url, username=AGOL_USER, password=WRONG_SECRET,
                      ca_bundle=str(rig.arcgis.ca_bundle)).save("agol-dev", overwrite=True)
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "publishing to agol failed" in message and "cannot open" in message, message
    assert "Invalid username or password" in message, message
    assert_only_destination_failed(rig, "agol")


def test_a_bucket_that_does_not_exist(make_rig) -> None:
    rig: Rig = make_rig(records=10, settings={"bucket": "no-such-bucket-here"})
    state = rig.run()
    assert state.is_failed()
    assert "bucket 'no-such-bucket-here' does not exist" in error_of(state), error_of(state)
    assert_store_untouched(rig)


def test_bad_aws_retry_settings_are_named(make_rig, monkeypatch) -> None:
    rig: Rig = make_rig(records=10)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "lots")
    state = rig.run()
    assert state.is_failed()
    assert "AWS_MAX_ATTEMPTS must be a whole number >= 1" in error_of(state), error_of(state)
    assert_store_untouched(rig)
