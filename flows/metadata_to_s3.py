"""Load an app's metadata from Knack into the store: ``python flows/metadata_to_s3.py -a APP -e ENV``."""

from __future__ import annotations

import sys
from typing import Any

if __name__ == "__main__":  # config mistakes are refused before Prefect is imported
    from flows._refuse import refuse_early

    refuse_early("metadata-to-s3")

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from flows._isolation import refuse_other_env
from flows._params import Env
from flows._refuse import check_args, refused
from tasks.credentials import remembering_s3_block
from tasks.domain.config import check_env, load_config
from tasks.domain.errors import ConfigError
from tasks.knack.tasks import fetch_metadata, store_metadata
from tasks.store.open import log_store_choice


@flow(name="metadata-to-s3", timeout_seconds=LIMITS["metadata-to-s3"],
      flow_run_name="metadata-to-s3-{app}-{env}")
def metadata_to_s3(app: str, env: Env, refresh: bool = True, config_path: str | None = None
                   ) -> dict[str, Any]:
    """Fetch the app metadata (fresh unless ``refresh`` is false) and store ``<env>/<app>/metadata.json``.

    Args:
        app: The app's name in the container config (e.g. data-tracker).
        env: The environment: the store's prefix and the suffix of every credential block.
        refresh: Ask Knack even when the stored metadata is less than an hour old.
        config_path: Another container config file; empty means $KNACK_SERVICES_CONFIG or the image's own.
    """
    check_env(env)
    refuse_other_env(env)  # before anything is read
    config = load_config(config_path)
    app_cfg = config.app(app)
    with remembering_s3_block(env):  # the block s3-<env> loaded once by the run's steps
        log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
        metadata = fetch_metadata(app_cfg, env, config.settings, refresh=refresh)
        changed = store_metadata(app_cfg, env, config.settings, metadata)
    return {"app": app, "env": env, "metadata_changed": changed}


def main(argv: list[str] | None = None) -> int:
    args = parser("Load a Knack app's metadata into the store.", container=False, date=False).parse_args(argv)
    try:
        check_args(args.app_name, None, args.config)
    except ConfigError as exc:
        return refused("metadata-to-s3", exc)
    return run(metadata_to_s3, {"app": args.app_name, "env": args.env, "config_path": args.config})


if __name__ == "__main__":
    sys.exit(main())
