"""Load an app's metadata from Knack into the store: ``python flows/metadata_to_s3.py -a APP -e ENV``."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger

from flows._cli import LIMITS, parser, run
from tasks.domain.config import check_env, load_config
from tasks.knack.tasks import fetch_metadata, store_metadata
from tasks.store.open import log_store_choice


@flow(name="metadata-to-s3", timeout_seconds=LIMITS["metadata-to-s3"],
      flow_run_name="metadata-to-s3-{app}-{env}")
def metadata_to_s3(app: str, env: str = "dev", refresh: bool = True, config_path: str | None = None
                   ) -> dict[str, Any]:
    """Fetch the app metadata (fresh unless ``refresh`` is false) and store ``<env>/<app>/metadata.json``."""
    check_env(env)
    config = load_config(config_path)
    app_cfg = config.app(app)
    log_store_choice(env, config.settings, get_run_logger())  # the run's first line: which store, why
    metadata = fetch_metadata.with_options(refresh_cache=refresh)(app_cfg, env)
    changed = store_metadata(app_cfg, env, config.settings, metadata)
    return {"app": app, "env": env, "metadata_changed": changed}


def main(argv: list[str] | None = None) -> int:
    args = parser("Load a Knack app's metadata into the store.", container=False, date=False).parse_args(argv)
    return run(metadata_to_s3, {"app": args.app_name, "env": args.env, "config_path": args.config})


if __name__ == "__main__":
    sys.exit(main())
