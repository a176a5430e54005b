"""The whole pipeline on this machine, with no accounts: ``bash scripts/demo.sh``.

Starts the Knack, Socrata and ArcGIS emulators (a generated app; the datasets and layers its config
publishes to), saves the ``dev`` blocks aimed at them, runs ``sync`` for every demo container into the
local folder store (``.demo/store``, laid out like the bucket), edits a few Knack records, runs again
incrementally, and prints what landed where. Everything it started stops on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
os.environ.setdefault("PREFECT_HOME", str(DEMO / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

import yaml  # noqa: E402

APP, ENV = "demo", "dev"


def say(text: str = "") -> None:
    print(text, flush=True)


def demo_config(store: Path) -> Path:
    """The checked-in config with the store pointed at a local folder, and an analytics table per container."""
    raw = yaml.safe_load((ROOT / "config" / "knack-services.yaml").read_text())
    raw.update({"store": "local", "local_store": str(store), "tables": True, "apps": {APP: raw["apps"][APP]}})
    path = DEMO / "knack-services.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--records", type=int, default=1000, help="records in the generated app (default 1000)")
    args.add_argument("--edits", type=int, default=5, help="records edited before the second run")
    args.add_argument("--serve", action="store_true",
                      help="keep the emulators running afterwards, to try the flows by hand (Ctrl-C stops)")
    opts = args.parse_args(argv)

    shutil.rmtree(DEMO / "store", ignore_errors=True)
    DEMO.mkdir(exist_ok=True)
    os.environ["KNACK_SERVICES_CONFIG"] = str(demo_config(DEMO / "store"))

    from emulators.arcgis import ArcGISEmulator
    from emulators.knack import KnackEmulator, generate_app
    from emulators.provision import agol_definition, socrata_schema
    from emulators.socrata import SocrataEmulator
    from tasks.domain.config import load_config

    config = load_config()
    containers = config.app(APP).containers
    secret = os.urandom(8).hex()
    started = time.monotonic()
    with ExitStack() as stack:
        say(f"Starting the emulators (Knack app with {opts.records} generated records) ...")
        app = generate_app(records=opts.records, seed=1)
        knack = KnackEmulator(app, rate_limit_per_second=10)
        knack.start()
        stack.callback(knack.stop)
        socrata = SocrataEmulator(username="demo-key", password=secret)
        socrata.start()
        stack.callback(socrata.stop)
        arcgis = ArcGISEmulator(cert_dir=DEMO / "certs", username="demo", password=secret)
        arcgis.start()
        stack.callback(arcgis.stop)
        for cfg in containers.values():
            if cfg.socrata_resource_id:
                socrata.create_dataset(cfg.socrata_resource_id, socrata_schema(app["metadata"], cfg))
            if cfg.service_id:
                arcgis.create_layer(cfg.service_id, agol_definition(app["metadata"], cfg), layer_id=cfg.layer_id)

        say("Saving the dev credential blocks (a local Prefect database in .demo/prefect) ...")
        from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials

        KnackCredentials(app_id=knack.app_id, api_key=knack.api_key, api_url=knack.api_url).save(
            f"knack-{APP}-{ENV}", overwrite=True)
        SocrataCredentials(domain=socrata.url, username="demo-key", password=secret,
                           app_token="demo-token").save(f"socrata-{ENV}", overwrite=True)
        ArcGISCredentials(url=arcgis.portal_url, username="demo", password=secret,
                          ca_bundle=str(arcgis.ca_bundle)).save(f"agol-{ENV}", overwrite=True)

        from flows.sync import sync

        runs: dict[str, list[dict]] = {key: [] for key in containers}
        for label in ("first run (full)", "second run (incremental)"):
            if label.startswith("second"):
                edited = knack.edit_random("object_1", opts.edits, seed=2)
                say(f"Edited {len(edited)} signals in Knack: {', '.join(edited)}")
            say(f"Running sync, {label} ...")
            for key in containers:
                report = sync(app=APP, container=key, env=ENV)
                runs[key].append(report)
                say("  " + _line(key, report))

        say("")
        say("What landed where:")
        say(f"  store    {DEMO / 'store'}/{ENV}/{APP}/<container>/<record-id>.json")
        say(f"  tables   {DEMO / 'store'}/{ENV}/{APP}/_tables/<container>/ (Delta Lake: DuckDB, Polars, pandas)")
        for key, cfg in containers.items():
            objects = len(list((DEMO / "store" / ENV / APP / key).glob("*.json")))
            where = [f"store: {objects} records"]
            if cfg.socrata_resource_id:
                where.append(f"Socrata {cfg.socrata_resource_id}: {len(socrata.rows(cfg.socrata_resource_id))} rows")
            if cfg.service_id:
                where.append(f"ArcGIS {cfg.agol_kind}: {len(arcgis.features(cfg.service_id, cfg.layer_id))} features")
            if cfg.publishes_to_table:
                from deltalake import DeltaTable

                from tasks.table.client import table_ids

                table = DeltaTable(str(DEMO / "store" / ENV / APP / "_tables" / key))
                where.append(f"table: {len(table_ids(table))} rows, version {table.version()}")
            first, second = runs[key][0]["store"], runs[key][-1]["store"]
            say(f"  {key:9} " + ", ".join(where) + f"; the second run read {second['fetched']} of "
                f"{first['fetched']} records from Knack and rewrote {second['written']}")
        say(f"Knack requests served: {knack.counters()['requests']}. Done in {time.monotonic() - started:.0f} s.")
        if opts.serve:
            say("")
            say("The emulators keep running. In another shell, from this folder:")
            say(f"  export PREFECT_HOME={os.environ['PREFECT_HOME']} "
                f"KNACK_SERVICES_CONFIG={os.environ['KNACK_SERVICES_CONFIG']}")
            say(f"  .venv/bin/python flows/sync.py -a {APP} -c object_1 -e {ENV}")
            say(f"  curl -X POST {knack.url}/_admin/objects/object_1/edit-random -d '{{\"count\": 3}}'")
            say("Ctrl-C here stops them.")
            while True:
                time.sleep(3600)
    return 0


def _line(key: str, report: dict) -> str:
    store = report["store"]
    parts = [f"{key:9} fetched {store['fetched']:5}, wrote {store['written']:5}, unchanged {store['unchanged']:5}"]
    for name, result in report["published"].items():
        parts.append(f"{name}: {result.get('upserted', 0)} upserted, {result.get('deleted', 0)} deleted")
    return "; ".join(parts)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: emulators stopped", file=sys.stderr)
        sys.exit(130)
