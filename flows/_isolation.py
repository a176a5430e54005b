"""Environments kept apart: a deployment of one env refuses a run of the other before anything is read.

Each deployment carries its env twice (scripts/deployments.py): in its name (``...-prod``) and in the
job variable ``KNACK_SERVICES_ENV``, which the worker sets in the run's environment. A run whose ``env``
parameter disagrees (``prefect deployment run sync/demo-object-1-dev --param env=prod``) fails at once,
before any config, credential, store or Knack is touched. ``KNACK_SERVICES_ENV`` set on a machine binds
local runs the same way.
"""

from __future__ import annotations

import os

from tasks.domain.config import ENVS
from tasks.domain.errors import ConfigError

ENV_VAR = "KNACK_SERVICES_ENV"


def env_of_deployment(name: str | None) -> str | None:
    """The env a deployment name ends with (``demo-object-1-dev`` → dev), or None."""
    if not name:
        return None
    for env in ENVS:
        if name.endswith(f"-{env}"):
            return env
    return None


def refusal(env: str, deployment: str | None, bound_env: str | None) -> str | None:
    """Why a run asking for ``env`` must not run here, or None.

    ``deployment`` is the run's deployment (``flow/name``) or None for a run without one; ``bound_env`` the
    value of ``KNACK_SERVICES_ENV`` in the run's environment (None when unset).
    """
    named = env_of_deployment(deployment.split("/", 1)[-1] if deployment else None)
    bound = bound_env.strip() if bound_env and bound_env.strip() else None
    if bound is not None and bound not in ENVS:
        return f"{ENV_VAR}={bound!r} is not an env (expected one of {', '.join(ENVS)})"
    if named is not None and bound is not None and named != bound:
        return (f"deployment {deployment} is named for env {named} but its {ENV_VAR} is {bound}: "
                "redeploy it from prefect.yaml (python scripts/deployments.py)")
    mine = bound or named
    if mine is None or mine == env:
        return None
    where = f"deployment {deployment}" if deployment else f"this machine ({ENV_VAR}={bound})"
    fix = (f"run the {env} deployment ({deployment.rsplit('-', 1)[0]}-{env})" if deployment and named
           else f"run it where {ENV_VAR} is {env}")
    return f"{where} belongs to env {mine}; a run for env {env} is refused before anything is read: {fix}"


def refuse_other_env(env: str) -> None:
    """Raise ConfigError when this run's deployment (or machine) belongs to the other env."""
    deployment = None
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        if ctx is not None and ctx.flow_run is not None and ctx.flow_run.deployment_id is not None:
            from prefect.runtime import deployment as runtime_deployment

            flow_name = ctx.flow.name if ctx.flow is not None else "?"
            deployment = f"{flow_name}/{runtime_deployment.name}"
    except Exception:  # noqa: BLE001 - no API: the environment variable alone decides
        deployment = None
    reason = refusal(env, deployment, os.environ.get(ENV_VAR))
    if reason:
        raise ConfigError(reason)
