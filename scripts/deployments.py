"""Write prefect.yaml from the container config: ``python scripts/deployments.py [--check] [--config FILE]``.

Every configured container gets a ``sync`` deployment per environment: hourly incremental (UTC), nightly
reconcile (00:MM America/Chicago), a republish on ``republish_cron``'s hours and days when the config sets
one; each at its own minute (a stable hash of the deployment name, spread within the app), never in the
daylight-saving hours 01:00-03:59 local; one run at a time, a newcomer waiting its turn (``ENQUEUE``).
Every app gets a ``sync-app`` fan-out and a ``metadata-to-s3`` deployment per environment; the docker jobs
are auto-removed and memory-limited, and each env's carry ``KNACK_SERVICES_ENV``; the seed's three record services are
deployed once, with their parameters given at run time. ``--check`` writes nothing and exits 1 when
prefect.yaml differs from what the config gives.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tasks.domain.config import ENVS, Config, load_config  # noqa: E402
from tasks.domain.errors import ConfigError  # noqa: E402
from tasks.domain.quota import cron_field  # noqa: E402

PREFECT_YAML = ROOT / "prefect.yaml"

HEADER = """\
# Deployments of knack-services. GENERATED from config/knack-services.yaml by
#   python scripts/deployments.py        (tests/unit/test_prefect_yaml.py fails when they disagree)
# Deploy from the repo root (docs/guide.md, "Operator's guide"):
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
      platform: linux/amd64  # the workers' platform, whatever machine deploys

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
{pools}\
  one_at_a_time: &one_at_a_time  # a run that finds one of its deployment going waits its turn (never cancelled)
    limit: 1
    collision_strategy: ENQUEUE

deployments:
"""


# The docker job: removed when it ends; at most MEM_LIMIT of memory (no swap beyond it): the measured peak
# RSS of a 50,000-record full sync with the analytics table on is 1,197 MB (docs/benchmark.md), plus 50%.
MEM_LIMIT = "1800m"

POOL = """\
    {anchor}: &{anchor}
      name: knack-docker
      job_variables:
        image: "{{{{ build-image.image }}}}"
        image_pull_policy: IfNotPresent
        auto_remove: true  # a finished run's container is removed, not left behind
        mem_limit: {mem}
        memswap_limit: {mem}
        env:
          PREFECT_LOGGING_LEVEL: INFO
          PREFECT_LOGGING_EXTRA_LOGGERS: tasks  # chunk, edit and retry lines reach the run's log
{env_line}"""

TIMEZONE = "America/Chicago"   # the nightly and republish runs' local time
QUIET_HOURS = range(1, 4)      # 01:00-03:59 local: US daylight-saving changes happen at 02:00 local
NIGHTLY_HOUR = 0               # the nightly reconcile: 00:MM local, before the quiet hours and the morning


def pools() -> str:
    """The pool definitions: one for the env-free deployments, one per env (its ``KNACK_SERVICES_ENV``)."""
    out = [POOL.format(anchor="docker", mem=MEM_LIMIT, env_line="")]
    for env in ENVS:
        line = f"          KNACK_SERVICES_ENV: {env}  # a run for the other env is refused (flows/_isolation.py)\n"
        out.append(POOL.format(anchor=f"docker_{env}", mem=MEM_LIMIT, env_line=line))
    return "".join(out)


def name_hash(name: str) -> int:
    """A stable hash of a deployment name (the same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def spread_minutes(names: list[str]) -> dict[str, int]:
    """A start minute per name: its hash modulo 60, moved on to the next free minute when taken, so no two
    names share a minute while a free one remains (61 or more names fill the hour again)."""
    taken: set[int] = set()
    minutes = {}
    for name in names:
        if len(taken) == 60:
            taken.clear()
        minute = name_hash(name) % 60
        while minute in taken:
            minute = (minute + 1) % 60
        taken.add(minute)
        minutes[name] = minute
    return minutes


def republish_line(republish_cron: str, minute: int) -> str:
    """``republish_cron`` with the deployment's own minute; its hour must be outside the quiet hours."""
    fields = republish_cron.split()
    hours = cron_hours(fields[1])
    if hours & set(QUIET_HOURS):
        raise ConfigError(f"republish_cron {republish_cron!r} fires at {min(hours & set(QUIET_HOURS)):02d}h, inside "
                          f"the daylight-saving hours 01:00-03:59 of {TIMEZONE} (a run skipped or run twice): "
                          "pick an hour from 4 to 23 or 0")
    return " ".join([str(minute), *fields[1:]])


def cron_hours(field: str) -> set[int]:
    """The hours a cron hour field names (``*``, ``4``, ``0,4-23``, ``*/6``, ``4-20/2``)."""
    return cron_field(field, 0, 23)


def schedules(name: str, env: str, minute: int, republish_cron: str | None) -> str:
    """One sync deployment's schedules: hourly in UTC (no daylight saving), the nightly reconcile and the
    republish in local time outside the quiet hours; paused in dev (dev runs on demand)."""
    paused = "        active: false\n" if env == "dev" else ""
    nightly = (minute + 30) % 60  # never the hourly's minute
    out = ["    schedules:\n",
           f'      - cron: "{minute} * * * *"  # hourly incremental (UTC: no daylight-saving gap)\n',
           "        timezone: UTC\n", paused,
           f'      - cron: "{nightly} {NIGHTLY_HOUR} * * *"  # nightly reconcile: what changed, what went missing, '
           "deletes, to every destination\n",
           f"        timezone: {TIMEZONE}\n", "        parameters: {full: true}\n", paused]
    if republish_cron is not None:
        out += [f'      - cron: "{republish_line(republish_cron, nightly)}"  # republish: every record to every '
                "destination again\n",
                f"        timezone: {TIMEZONE}\n", "        parameters: {full: true, republish: true}\n", paused]
    return "".join(out)


def sync_name(app: str, container: str, env: str) -> str:
    """The ``sync`` deployment of one container (``flows.sync_app.deployment_name`` without the flow)."""
    return f"{app}-{container.replace('_', '-')}-{env}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(config: Config) -> str:
    """prefect.yaml for ``config``: the fixed header, then the deployments in config order."""
    out = [HEADER.replace("{pools}", pools())]
    for app in config.apps.values():
        for env in ENVS:
            names = [sync_name(app.name, key, env) for key in app.containers]
            minutes = spread_minutes(names)
            out.append(f"  # {app.name}, {env}: one sync deployment per container\n")
            for (key, container), name in zip(app.containers.items(), names, strict=True):
                out.append(f"  - name: {name}\n"
                           f"    entrypoint: flows/sync.py:sync\n")
                if container.description:
                    out.append(f"    description: {_quote(container.description)}\n")
                out.append(f"    parameters: {{app: {app.name}, container: {key}, env: {env}}}\n")
                out.append(schedules(name, env, minutes[name], config.settings.republish_cron))
                out.append(f"    concurrency_limit: *one_at_a_time\n"
                           f"    work_pool: *docker_{env}\n"
                           f"    tags: [knack, {app.name}, {env}]\n")
            out.append(f"  - name: {app.name}-{env}\n"
                       f"    entrypoint: flows/sync_app.py:sync_app\n"
                       f"    description: Every container of {app.name}, each as a run of its sync deployment\n"
                       f"    parameters: {{app: {app.name}, env: {env}, via_deployments: true}}\n"
                       f"    work_pool: *docker_{env}\n"
                       f"    tags: [knack, {app.name}, {env}]\n"
                       f"  - name: metadata-{app.name}-{env}\n"
                       f"    entrypoint: flows/metadata_to_s3.py:metadata_to_s3\n"
                       f"    parameters: {{app: {app.name}, env: {env}}}\n"
                       f"    work_pool: *docker_{env}\n"
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
    try:
        text = render(load_config(args.config or ROOT / "config" / "knack-services.yaml"))
    except ConfigError as exc:
        print(f"deployments failed: {exc}", file=sys.stderr)
        return 1
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
