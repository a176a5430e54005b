"""What the single-container flows share: their command line, and a destination flow's one step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect import Flow
from prefect.logging import get_run_logger

from flows._cli import parser, run
from flows._events import alerting_held_back
from flows._isolation import refuse_other_env
from flows._refuse import check_args, refused
from tasks.clock import utc_now
from tasks.credentials import remembering_s3_block
from tasks.domain.config import load_container
from tasks.domain.errors import ConfigError
from tasks.domain.knack import parse_since
from tasks.domain.results import PublishResult
from tasks.store.open import log_store_choice

# publish_socrata, publish_agol, publish_table: (app, cfg, env, settings, full, since, allow_mass_delete,
# republish) -> PublishResult
Publisher = Callable[..., PublishResult]


def publish_from_store(publish: Publisher, app: str, container: str, env: str, since: datetime | None,
                       full: bool, config_path: str | None, allow_mass_delete: bool,
                       republish: bool) -> PublishResult:
    """A destination flow's body: load the container's config, say which store the run reads, publish."""
    refuse_other_env(env)  # before anything is read
    config, _, cfg = load_container(app, container, env, config_path)
    with remembering_s3_block(env):  # the block s3-<env> loaded once by the run's steps
        log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
        with alerting_held_back(app, container, env, _destination(publish)):
            return publish(app, cfg, env, config.settings, full, parse_since(since, utc_now()) if since else None,
                           allow_mass_delete, republish)


def container_main(flow_fn: Flow[..., Any], description: str, argv: list[str] | None, *,
                   republish: bool = True) -> int:
    """``python flows/<flow>.py -a -c -e [-d] [--full] ...``: refuse config mistakes, then run the flow."""
    args = parser(description).parse_args(argv)
    try:
        since = check_args(args.app_name, args.container, args.config, args.date)
    except ConfigError as exc:
        return refused(flow_fn.name, exc)
    kwargs = {"app": args.app_name, "container": args.container, "env": args.env, "since": since,
              "full": args.full, "config_path": args.config, "allow_mass_delete": args.allow_mass_delete}
    if republish:
        kwargs["republish"] = args.republish
    return run(flow_fn, kwargs)


def _destination(publish: Publisher) -> str:
    """``socrata`` for the task ``publish-to-socrata`` (or the function ``publish_socrata``)."""
    name = str(getattr(publish, "name", None) or getattr(publish, "__name__", "destination"))
    return name.removeprefix("publish-to-").removeprefix("publish_")
