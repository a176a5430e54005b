"""Print the Knack quota plan: ``python scripts/quota_plan.py -e prod [-a APP] [--from-api] [--config FILE]``.

Projects each Knack account's daily requests from the ``sync`` deployments' schedules (prefect.yaml, or
with ``--from-api`` the deployments saved on the Prefect server) and each container's record count in
the store, against the apps' ``daily_quota`` less their ``quota_floor``; names the containers to slow
down. Exits 1 when an account breaks its floor (docs/guide.md, "Knack quota plan").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tasks.domain.config import ENVS, load_config  # noqa: E402
from tasks.domain.errors import KnackServicesError  # noqa: E402
from tasks.domain.quota import refusal, render  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Project each Knack account's daily requests against its quota.")
    p.add_argument("-e", "--env", required=True, choices=ENVS)
    p.add_argument("-a", "--app-name", default=None, help="one app (and the apps sharing its quota_account)")
    p.add_argument("--config", default=None, help="config file (default: $KNACK_SERVICES_CONFIG or the repo's)")
    p.add_argument("--deployments", default=str(ROOT / "prefect.yaml"), help="prefect.yaml to read schedules from")
    p.add_argument("--from-api", action="store_true", help="read the schedules from the Prefect server instead")
    args = p.parse_args(argv)
    from tasks.quota import quota_plan, schedules_from_api, schedules_from_file

    try:
        config = load_config(args.config)
        apps = [config.app(args.app_name).name] if args.app_name else None
        schedules = schedules_from_api(args.env) if args.from_api else schedules_from_file(args.deployments, args.env)
        plans = quota_plan(config, args.env, apps, schedules)
    except (KnackServicesError, OSError) as exc:
        print(f"quota plan failed: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store or the Prefect API could not be reached: one line, not a traceback
        print(f"quota plan failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(render(plans, args.env))
    return 1 if refusal(plans) else 0


if __name__ == "__main__":
    sys.exit(main())
