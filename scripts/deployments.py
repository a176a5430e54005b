"""Write prefect.yaml from the container config: ``python scripts/deployments.py [--check] [--config FILE]``.

Every configured container gets a ``sync`` deployment per environment (hourly incremental, nightly
reconcile, a republish on ``republish_cron`` when the config sets one; one run at a time: a newcomer is
cancelled while one is going); every app a ``sync-app``
fan-out and a ``metadata-to-s3`` deployment per environment; the seed's three record services are
deployed once, with their parameters given at run time. ``--check`` writes nothing and exits 1 when
prefect.yaml differs from what the config gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tasks.domain.config import ENVS, Config, load_config  # noqa: E402

PREFECT_YAML = ROOT / "prefect.yaml"

HEADER = """\
# Deployments of knack-services. GENERATED from config/knack-services.yaml by
#   python scripts/deployments.py        (tests/unit/test_prefect_yaml.py fails when they disagree)
# Deploy from the repo root (README.md, "Operator's guide"):
#   IMAGE=<registry>/knack-services PROJECT_DIR=/app prefect --no-prompt deploy --all
# One image build and one push per deploy, tagged with the commit; every deployment runs that tag.
name: knack-services
prefect-version: 3.9.1

build:
  - prefect.deployments.steps.run_shell_script:  # refuses a deploy without IMAGE or PROJECT_DIR
      id: image-tag
      script: python scripts/image_tag.py
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      requires: prefect-docker>=0.7
      image_name: "{{ $IMAGE }}"
      tag: "{{ image-tag.stdout }}"
      dockerfile: Dockerfile

push:
  - prefect_docker.deployments.steps.push_docker_image:
      requires: prefect-docker>=0.7
      image_name: "{{ build-image.image_name }}"
      tag: "{{ build-image.tag }}"

pull:  # where the code is when a run starts: /app in the image; the checkout for a process pool
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $PROJECT_DIR }}"

definitions:
  work_pools:
    docker: &docker
      name: knack-docker
      job_variables:
        image: "{{ build-image.image }}"
        image_pull_policy: IfNotPresent
        env:
          PREFECT_LOGGING_LEVEL: INFO
          PREFECT_LOGGING_EXTRA_LOGGERS: tasks  # chunk, edit and retry lines reach the run's log
  one_at_a_time: &one_at_a_time  # a run that finds one of its deployment going is cancelled, not failed
    limit: 1
    collision_strategy: CANCEL_NEW
"""

SCHEDULES = """\
  schedules:
    prod: &prod_schedules
      - cron: "7 * * * *"  # hourly incremental
        timezone: America/Chicago
      - cron: "37 2 * * *"  # nightly reconcile: what changed, what went missing, deletes, to every destination
        timezone: America/Chicago
        parameters: {{full: true}}
{prod_republish}\
    dev: &dev_schedules  # the same, paused: dev runs on demand
      - cron: "7 * * * *"
        timezone: America/Chicago
        active: false
      - cron: "37 2 * * *"
        timezone: America/Chicago
        parameters: {{full: true}}
        active: false
{dev_republish}\

deployments:
"""

REPUBLISH = """\
      - cron: "{cron}"{comment}
        timezone: America/Chicago
        parameters: {{full: true, republish: true}}
"""


def schedules(republish_cron: str | None) -> str:
    """The shared schedules: hourly, nightly reconcile, and the republish (``republish_cron``) if set."""
    if republish_cron is None:
        return SCHEDULES.format(prod_republish="", dev_republish="")
    prod = REPUBLISH.format(cron=republish_cron, comment="  # republish: every record to every destination again")
    dev = REPUBLISH.format(cron=republish_cron, comment="") + "        active: false\n"
    return SCHEDULES.format(prod_republish=prod, dev_republish=dev)


def sync_name(app: str, container: str, env: str) -> str:
    """The ``sync`` deployment of one container (``flows.sync_app.deployment_name`` without the flow)."""
    return f"{app}-{container.replace('_', '-')}-{env}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: Config) -> str:
    """prefect.yaml for ``config``: the fixed header, then the deployments in config order."""
    out = [HEADER, schedules(config.settings.republish_cron)]
    for app in config.apps.values():
        for env in ENVS:
            out.append(f"  # {app.name}, {env}: one sync deployment per container\n")
            for key, container in app.containers.items():
                out.append(f"  - name: {sync_name(app.name, key, env)}\n"
                           f"    entrypoint: flows/sync.py:sync\n")
                if container.description:
                    out.append(f"    description: {_quote(container.description)}\n")
                out.append(f"    parameters: {{app: {app.name}, container: {key}, env: {env}}}\n"
                           f"    schedules: *{env}_schedules\n"
                           f"    concurrency_limit: *one_at_a_time\n"
                           f"    work_pool: *docker\n"
                           f"    tags: [knack, {app.name}, {env}]\n")
            out.append(f"  - name: {app.name}-{env}\n"
                       f"    entrypoint: flows/sync_app.py:sync_app\n"
                       f"    description: Every container of {app.name}, each as a run of its sync deployment\n"
                       f"    parameters: {{app: {app.name}, env: {env}, via_deployments: true}}\n"
                       f"    work_pool: *docker\n"
                       f"    tags: [knack, {app.name}, {env}]\n"
                       f"  - name: metadata-{app.name}-{env}\n"
                       f"    entrypoint: flows/metadata_to_s3.py:metadata_to_s3\n"
                       f"    parameters: {{app: {app.name}, env: {env}}}\n"
                       f"    work_pool: *docker\n"
                       f"    tags: [knack, {app.name}, {env}]\n")
    out.append("  # the seed's services, for runbooks that call them one by one (parameters at run time)\n")
    for flow in ("records_to_s3", "records_to_socrata", "records_to_agol", "records_to_table"):
        out.append(f"  - name: {flow.replace('_', '-')}\n"
                   f"    entrypoint: flows/{flow}.py:{flow}\n"
                   f"    work_pool: *docker\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write prefect.yaml from the container config.")
    p.add_argument("--config", default=None, help="config file (default: config/knack-services.yaml)")
    p.add_argument("--output", default=str(PREFECT_YAML), help="where to write (default: prefect.yaml)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file differs")
    args = p.parse_args(argv)
    text = render(load_config(args.config or ROOT / "config" / "knack-services.yaml"))
    target = Path(args.output)
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} disagrees with the config: run python scripts/deployments.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
