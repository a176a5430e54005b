"""Fan-out: sync every configured container of an app (or of every app) with bounded concurrency.

Locally the containers run as ``sync`` subflows in a few threads; with ``via_deployments`` each one
becomes a run of its own ``sync`` deployment (``<app>-<container>-<env>``), so the work spreads over the
pool's workers. Either way each app's Knack requests share one rate limit (a Prefect global
concurrency limit ``knack-<app>`` when a server is configured).

``python flows/sync_app.py -a <app> -e <env> [--full] [--via-deployments]``
"""

from __future__ import annotations

import argparse
import sys
from typing import cast

if __name__ == "__main__":  # config mistakes are refused before Prefect is imported
    from flows._refuse import refuse_early

    refuse_early("sync-app")

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows._cli import LIMITS, run
from flows._isolation import refuse_other_env
from flows._params import Env
from flows._refuse import check_args, refused
from flows.sync import sync
from tasks.credentials import remembering_s3_block
from tasks.domain.config import ENVS, Config, check_env, load_config
from tasks.domain.errors import ConfigError, KnackServicesError
from tasks.domain.quota import refusal, render
from tasks.quota import quota_plan, schedules_from_api


def deployment_name(app: str, container: str, env: str) -> str:
    """The ``sync`` deployment of one container, as prefect.yaml names it."""
    return f"sync/{app}-{container.replace('_', '-')}-{env}"


@task(name="knack-quota-plan", cache_policy=NO_CACHE)
def check_quota_plan(config: Config, env: str, apps: list[str], jobs: list[tuple[str, str]], full: bool) -> None:
    """Project each Knack account's requests today (the deployments' schedules, each container's size in
    the store, and the runs this fan-out is about to start); leave the plan as an artifact; refuse,
    before any run starts, when an account would break its quota floor."""
    plans = quota_plan(config, env, apps, schedules_from_api(env), {job: full for job in jobs})
    markdown = render(plans, env)
    create_markdown_artifact(key=f"knack-quota-plan-{'-'.join(sorted(apps))}-{env}"[:100], markdown=markdown,
                             description="Knack requests a day, projected from the schedules and the store")
    reason = refusal(plans)
    if reason:
        raise KnackServicesError(f"sync-app refused, no run started: {reason} (docs/guide.md, \"Knack quota plan\")")
    get_run_logger().info("Knack quota plan: %s", "; ".join(
        f"{p.account} {p.requests:,} of {p.daily_quota:,} a day (floor {p.quota_floor:,})" for p in plans))


@task(name="sync-container", cache_policy=NO_CACHE)
def sync_container(app: str, container: str, env: str, full: bool, config_path: str | None) -> str:
    """One container in this process, as a ``sync`` subflow."""
    state = sync(app=app, container=container, env=env, full=full, config_path=config_path, return_state=True)
    return state.type.value


@task(name="run-container-deployment", cache_policy=NO_CACHE)
def run_container_deployment(app: str, container: str, env: str, full: bool) -> str:
    """One container as a run of its own deployment, waited for."""
    # called outside an event loop, Prefect's dual sync/async function returns the flow run itself
    flow_run = cast(FlowRun, run_deployment(name=deployment_name(app, container, env),
                                            parameters={"app": app, "container": container, "env": env,
                                                        "full": full},
                                            timeout=None))
    return flow_run.state.type.value if flow_run.state else "UNKNOWN"


@flow(name="sync-app", timeout_seconds=LIMITS["sync-app"],
      # Prefect's TaskRunner is invariant in its future type, so its own thread pool runner does not match
      # the parameter's declared TaskRunner[PrefectFuture[Any]]
      task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def sync_app(env: Env, app: str | None = None, full: bool = False, via_deployments: bool = False,
             config_path: str | None = None) -> dict[str, str]:
    """Every configured container of ``app`` (every app when None); fails if any container failed, and
    starts none when the Knack quota plan says an account would break its floor.

    Args:
        env: The environment: the store's prefix and the suffix of every credential block.
        app: The app's name in the container config; empty means every configured app.
        full: Full refresh of every container (deletes included).
        via_deployments: Run each container as a run of its own sync deployment, spread over the pool's
            workers; otherwise as subflows of this run, a few at a time.
        config_path: Another container config file; empty means $KNACK_SERVICES_CONFIG or the image's own.
    """
    check_env(env)
    refuse_other_env(env)  # before anything is read
    config = load_config(config_path)
    apps = [config.app(app)] if app else list(config.apps.values())
    jobs = [(a.name, key) for a in apps for key in a.containers]
    with remembering_s3_block(env):  # the block s3-<env> loaded once by the plan and every subflow
        check_quota_plan(config, env, [a.name for a in apps], jobs, full)
        get_run_logger().info("syncing %d containers of %s", len(jobs), ", ".join(a.name for a in apps))
        if via_deployments:
            futures = {job: run_container_deployment.submit(job[0], job[1], env, full) for job in jobs}
        else:
            futures = {job: sync_container.submit(job[0], job[1], env, full, config_path) for job in jobs}
        results = {f"{a}/{c}": fut.result() for (a, c), fut in futures.items()}
    failed = [name for name, state in results.items() if state != "COMPLETED"]
    if failed:
        raise KnackServicesError(f"{len(failed)} of {len(results)} containers failed: {', '.join(failed)}")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Sync every configured container of an app (or of all apps).")
    p.add_argument("-a", "--app-name", default=None, help="app name (default: every configured app)")
    p.add_argument("-e", "--env", required=True, choices=ENVS)
    p.add_argument("--full", action="store_true", help="full refresh of every container")
    p.add_argument("--via-deployments", action="store_true",
                   help="run each container as a run of its sync deployment (needs a Prefect server)")
    p.add_argument("--config", default=None)
    args = p.parse_args(argv)
    try:
        check_args(args.app_name, None, args.config)
    except ConfigError as exc:
        return refused("sync-app", exc)
    return run(sync_app, {"app": args.app_name, "env": args.env, "full": args.full,
                          "via_deployments": args.via_deployments, "config_path": args.config})


if __name__ == "__main__":
    sys.exit(main())
