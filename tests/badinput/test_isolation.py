"""Environments kept apart: a run for the other env is refused before anything is read, and every run
says, once, where each credential came from (a block or environment variables, never a value)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blocks import SocrataCredentials
from flows._isolation import ENV_VAR, env_of_deployment, refusal
from tasks.credentials import credential_source_line
from tests.faults.harness import SOCRATA_PASSWORD, SOCRATA_USER, Rig, api_log_text, error_of, find_secrets

pytestmark = pytest.mark.integration


def test_the_env_of_a_deployment_is_its_name_s_suffix() -> None:
    assert env_of_deployment("demo-object-1-dev") == "dev"
    assert env_of_deployment("metadata-demo-prod") == "prod"
    assert env_of_deployment("records-to-s3") is None


def test_a_dev_deployment_refuses_a_prod_run_naming_the_deployment_and_both_envs() -> None:
    why = refusal("prod", "sync/demo-object-1-dev", "dev")
    assert why is not None
    assert "deployment sync/demo-object-1-dev belongs to env dev" in why
    assert "a run for env prod is refused before anything is read" in why
    assert "sync/demo-object-1-prod" in why
    assert refusal("dev", "sync/demo-object-1-dev", "dev") is None
    assert refusal("prod", "sync/demo-object-1-dev", None) is not None  # the name alone decides
    assert refusal("prod", "sync/demo-object-1-prod", None) is None
    assert refusal("prod", None, None) is None  # a local run with nothing bound
    assert "belongs to env dev" in (refusal("prod", None, "dev") or "")
    assert "redeploy" in (refusal("dev", "sync/demo-object-1-dev", "prod") or "")
    assert "not an env" in (refusal("dev", None, "staging") or "")


def test_a_run_on_a_machine_bound_to_the_other_env_reads_nothing(make_rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig: Rig = make_rig(records=10)
    rig.knack.reset_counters()
    monkeypatch.setenv(ENV_VAR, "prod")
    state = rig.run()
    assert state.is_failed()
    message = error_of(state)
    assert "belongs to env prod; a run for env dev is refused before anything is read" in message, message
    assert rig.all_keys() == []  # nothing stored, no lock taken
    assert rig.knack.counters()["requests"] == 0  # Knack never asked


def test_each_run_says_once_where_each_credential_came_from(make_rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig: Rig = make_rig(records=10)
    started = datetime.now(UTC)
    rig.ok()
    text = api_log_text(started)
    for name in ("knack-demo-dev", "socrata-dev", "agol-dev"):
        assert text.count(credential_source_line(name, f"block {name}")) == 1, (name, text[-3000:])

    # the Socrata block gone: the seed's variables stand in, and the line names them, not their values
    socrata = SocrataCredentials.load("socrata-dev")
    SocrataCredentials.delete("socrata-dev")
    monkeypatch.setenv("SOCRATA_DOMAIN", socrata.domain)
    monkeypatch.setenv("SOCRATA_USERNAME", SOCRATA_USER)
    monkeypatch.setenv("SOCRATA_PASSWORD", SOCRATA_PASSWORD)
    started = datetime.now(UTC)
    rig.ok(full=True)
    text = api_log_text(started)
    line = credential_source_line("socrata-dev", "environment variables SOCRATA_DOMAIN, SOCRATA_USERNAME, "
                                                 "SOCRATA_PASSWORD (no block named socrata-dev)")
    assert text.count(line) == 1, text[-3000:]
    assert text.count(credential_source_line("knack-demo-dev", "block knack-demo-dev")) == 1
    assert find_secrets(text) == []
