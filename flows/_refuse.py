"""Config mistakes on the command line, refused before Prefect is imported or any Prefect server starts.

``python flows/<name>.py`` calls ``refuse_early`` first thing, then the flow's ``main`` calls ``check_args``
again (both cheap): an unknown app or container, a destination the container lacks, a date that is not
ISO-8601 or a config file that cannot be read is one line on stderr (``<flow> failed: ...``) and exit 1,
with no traceback and no run. Imports only the config module (no Prefect, no network).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from tasks.clock import utc_now
from tasks.domain.config import ENVS, check_env, load_config
from tasks.domain.errors import ConfigError
from tasks.domain.knack import parse_since


def check_args(app: str | None, container: str | None, config_path: str | None, date: str | None = None,
               destinations: Sequence[str] | None = None) -> datetime | None:
    """Raise ConfigError for what the config refuses; the parsed ``date`` (aware UTC) otherwise."""
    since = parse_since(date, utc_now()) if date else None
    config = load_config(config_path)
    if app is not None:
        config.app(app)
    if app is not None and container is not None:
        cfg = config.container(app, container)
        unknown = [d for d in destinations or [] if d not in cfg.destinations()]
        if unknown:
            raise ConfigError(f"{app}/{container} does not publish to {', '.join(unknown)} "
                              f"(configured: {', '.join(cfg.destinations()) or 'none'})")
    return since


def refuse_early(flow_name: str, argv: Sequence[str] | None = None) -> None:
    """Exit 1 with one line when the flags name something the config refuses; return otherwise.

    Flags are read leniently: what is missing or malformed here is left to the flow's own parser.
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args_in):
        return
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-a", "--app-name", default=None)
    p.add_argument("-c", "--container", default=None)
    p.add_argument("-e", "--env", default=None)
    p.add_argument("-d", "--date", default=None)
    p.add_argument("--only", action="append", default=None)
    p.add_argument("--config", default=None)
    try:
        args, _ = p.parse_known_args(args_in)
    except SystemExit:
        return
    if args.env is not None and args.env not in ENVS:
        print(f"{flow_name} failed: {_message(check_env, args.env)}", file=sys.stderr)
        sys.exit(2)
    try:
        check_args(args.app_name, args.container, args.config, args.date, args.only)
    except ConfigError as exc:
        print(f"{flow_name} failed: {exc}", file=sys.stderr)
        sys.exit(1)


def refused(flow_name: str, exc: ConfigError) -> int:
    """Say what the config refused, in one line; the exit code."""
    print(f"{flow_name} failed: {exc}", file=sys.stderr)
    return 1


def _message(check: Callable[[str], object], value: str) -> str:
    try:
        check(value)
    except ConfigError as exc:
        return str(exc)
    return ""
