"""Turn the seed's container config (``services/config/knack.py``) into this project's config file.

``python scripts/import_seed_config.py services/config/knack.py [-o config/knack-services.yaml]``

The seed's file is read as text and parsed (``ast``), never run or imported: the value of its top-level
``CONFIG = {...}`` must be a literal (strings, numbers, lists, dicts). Each container property the seed
documents carries over under the same name (``scene_id``, ``modified_date_field_id``, ``description``,
``socrata_resource_id``, ``location_fields``, ``service_id``, ``layer_id``, ``upsert_matching_field``;
``item_type`` becomes ``agol_kind``). Anything else is refused with its app, container and key, and so is
a value the config would refuse (tasks/domain/config.py validates the result): nothing is written then,
and every refusal is listed. Exit 0 when the file was written, 1 when something was refused.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tasks.domain.config import parse_config  # noqa: E402
from tasks.domain.errors import ConfigError  # noqa: E402

SAME_NAME = ("description", "scene_id", "modified_date_field_id", "location_fields", "socrata_resource_id",
             "service_id", "layer_id", "upsert_matching_field")
RENAMED = {"item_type": "agol_kind"}

# The seed's environment variables (one set per job) and where they go here (docs/guide.md, "Moving over from the seed")
SEED_ENV = {"APP_ID": "KNACK_APP_ID", "API_KEY": "KNACK_API_KEY", "SOCRATA_USERNAME": "SOCRATA_USERNAME",
            "SOCRATA_PASSWORD": "SOCRATA_PASSWORD", "AGOL_USERNAME": "AGOL_USERNAME",
            "AGOL_PASSWORD": "AGOL_PASSWORD", "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}


@dataclass(frozen=True)
class Refusal:
    """Something of the seed's config that cannot be carried over, and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def read_seed(path: Path) -> dict[str, Any]:
    """The literal value of the top-level ``CONFIG = ...`` in ``path``, without running the file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise ConfigError(f"{path}: not Python (line {exc.lineno}): {exc.msg}") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "CONFIG" for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise ConfigError(f"{path}, line {node.lineno}: CONFIG is not a literal (only strings, numbers, "
                                  "lists and dicts can be imported; the file is never run)") from None
            if not isinstance(value, dict):
                raise ConfigError(f"{path}, line {node.lineno}: CONFIG is a {type(value).__name__}, expected a dict "
                                  "of apps")
            return value
    raise ConfigError(f"{path}: no top-level CONFIG = {{...}} assignment")


def convert(seed: dict[str, Any]) -> tuple[dict[str, Any], list[Refusal]]:
    """This project's ``apps`` mapping for the seed's CONFIG, and what could not be carried over."""
    apps: dict[str, Any] = {}
    refused: list[Refusal] = []
    for app, containers in seed.items():
        if not isinstance(containers, dict):
            refused.append(Refusal(f"app {app!r}", f"expected a dict of containers, got {type(containers).__name__}"))
            continue
        out: dict[str, Any] = {}
        for key, props in containers.items():
            where = f"app {app!r}, container {key!r}"
            if not isinstance(props, dict):
                refused.append(Refusal(where, f"expected a dict of properties, got {type(props).__name__}"))
                continue
            body: dict[str, Any] = {}
            for name, value in props.items():
                if name in SAME_NAME:
                    body[name] = value
                elif name in RENAMED:
                    body[RENAMED[name]] = value
                else:
                    refused.append(Refusal(f"{where}, key {name!r}", "not a seed container property this importer "
                                           f"maps (known: {', '.join([*SAME_NAME, *RENAMED])})"))
            out[str(key)] = body
        apps[str(app)] = {"containers": out}
    return apps, refused


def validate(apps: dict[str, Any], source: str) -> list[Refusal]:
    """Each container checked as the config loader checks it; one refusal per container it refuses."""
    refused = []
    for app, body in apps.items():
        for key, props in body["containers"].items():
            try:
                parse_config({"apps": {app: {"containers": {key: props}}}}, source)
            except ConfigError as exc:
                refused.append(Refusal(f"app {app!r}, container {key!r}",
                                       str(exc).split(f"container {key!r}: ", 1)[-1].split(f"app {app!r}: ", 1)[-1]))
    return refused


def render(apps: dict[str, Any], source: str) -> str:
    header = (f"# knack-services container config, imported from the seed's {source} by\n"
              "#   python scripts/import_seed_config.py (docs/guide.md, \"Moving over from the seed\")\n"
              "# Validated at load (tasks/domain/config.py); docs/guide.md's \"Configuration\" section explains every key.\n")
    doc = {"bucket": "atd-knack-services", "store": "s3", "apps": apps}
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def next_steps(apps: dict[str, Any]) -> str:
    names = " ".join(f"--app {a}" for a in apps)
    return ("next: save each environment's blocks from the seed's variables (APP_ID and API_KEY become "
            "KNACK_APP_ID and KNACK_API_KEY, one app at a time), e.g.\n"
            f"  KNACK_APP_ID=$APP_ID KNACK_API_KEY=$API_KEY python -m tasks.save_blocks --env prod {names} "
            "--bucket atd-knack-services\n"
            "then python scripts/deployments.py to write prefect.yaml")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Turn the seed's services/config/knack.py into this project's config.")
    p.add_argument("seed", help="the seed's services/config/knack.py (read, never run)")
    p.add_argument("-o", "--output", default=None, help="where to write the YAML (default: standard output)")
    args = p.parse_args(argv)
    try:
        seed = read_seed(Path(args.seed))
    except ConfigError as exc:
        print(f"import_seed_config failed: {exc}", file=sys.stderr)
        return 1
    apps, refused = convert(seed)
    refused += validate(apps, args.seed)
    if refused:
        print(f"import_seed_config refused {len(refused)} thing(s) in {args.seed}; nothing written:", file=sys.stderr)
        for item in refused:
            print(f"  {item}", file=sys.stderr)
        return 1
    text = render(apps, args.seed)
    parse_config(yaml.safe_load(text), args.output or "<stdout>")  # what is written loads as it is
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {sum(len(a['containers']) for a in apps.values())} containers of "
              f"{len(apps)} app(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    print(next_steps(apps), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
