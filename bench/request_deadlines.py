"""What a whole-request deadline costs a fast request: N small GETs with and without it.

``python bench/request_deadlines.py [--requests 1000] [--rounds 5]`` starts the Knack emulator (no rate
limit) and moto's S3 server in their own processes, then times small GETs on kept-alive connections:
a Knack record through a plain ``requests.Session`` and through a session guarded by ``tasks/wire.py``,
and an S3 ``get_object`` through a plain and a guarded boto3 client. Plain and guarded requests
alternate one by one, so machine noise falls on both; medians and means are in microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.domain.deadlines import RequestDeadlines  # noqa: E402
from tasks.wire import guard_s3_client, guard_session  # noqa: E402

DEADLINES = RequestDeadlines(read=20, write=20)


def start(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A server process and its JSON ready line."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def timed(call: Callable[[], Any]) -> float:
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) * 1e6


def compare(name: str, plain: Callable[[], Any], guarded: Callable[[], Any], n: int, rounds: int) -> dict[str, Any]:
    """``rounds`` × ``n`` requests each way, alternating one plain and one guarded request, so machine
    noise falls on both alike; the median and the total per request, in microseconds."""
    plain(), guarded()  # connections open, code paths warm
    times: dict[str, list[float]] = {"plain": [], "guarded": []}
    for _ in range(rounds * n):
        times["plain"].append(timed(plain))
        times["guarded"].append(timed(guarded))
    median = {k: statistics.median(v) for k, v in times.items()}
    mean = {k: statistics.fmean(v) for k, v in times.items()}
    return {"what": name, "requests": rounds * n,
            "plain_median_us": round(median["plain"], 1), "guarded_median_us": round(median["guarded"], 1),
            "extra_median_us": round(median["guarded"] - median["plain"], 1),
            "plain_mean_us": round(mean["plain"], 1), "guarded_mean_us": round(mean["guarded"], 1)}


def knack(n: int, rounds: int) -> dict[str, Any]:
    import requests

    process, ready = start(["-m", "emulators", "knack", "--port", "0", "--records", "10", "--rate-limit", "0"])
    try:
        plain, guarded = requests.Session(), requests.Session()
        for session in (plain, guarded):
            session.trust_env = False
            session.headers.update({"X-Knack-Application-Id": ready["app_id"], "X-Knack-REST-API-Key": ready["api_key"]})
        guard_session(guarded, DEADLINES, "Knack app bench")
        url = f"{ready['api_url']}/objects/object_1/records?rows_per_page=1"
        return compare("Knack emulator, GET one record (requests)", lambda: plain.get(url, timeout=30).json(),
                       lambda: guarded.get(url, timeout=30).json(), n, rounds)
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3(n: int, rounds: int) -> dict[str, Any]:
    import boto3

    process, ready = start(["bench/s3_server.py", "--port", "0"])
    try:
        def client() -> Any:
            return boto3.client("s3", endpoint_url=ready["url"], region_name="us-east-1",
                                aws_access_key_id="bench", aws_secret_access_key="bench")
        plain, guarded = client(), guard_s3_client(client(), DEADLINES)
        plain.create_bucket(Bucket="bench")
        plain.put_object(Bucket="bench", Key="k.json", Body=b'{"id": 1}')
        return compare("moto S3, get_object of 9 bytes (boto3)",
                       lambda: plain.get_object(Bucket="bench", Key="k.json")["Body"].read(),
                       lambda: guarded.get_object(Bucket="bench", Key="k.json")["Body"].read(), n, rounds)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    for result in (knack(args.requests, args.rounds), s3(args.requests, args.rounds)):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
