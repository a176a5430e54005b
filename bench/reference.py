"""The reference uploader: what the S3 endpoint takes from a plain, well-configured boto3 client.

``python bench/reference.py --endpoint URL --bucket B --records-url URL --workers W --out F``: reads
the container's records from the Knack emulator's admin route (not timed, not counted as API use),
serializes them as the store does (not timed), then PUTs every document through one shared client
with a connection pool of ``W`` and a thread pool of ``W``. Only the PUTs are timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
from botocore.config import Config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--records-url", required=True)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    records = requests.get(args.records_url, timeout=600).json()["records"]
    docs = [(f"ref/{r['id']}.json", json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode())
            for r in records]
    del records
    client = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(max_pool_connections=args.workers))
    client.create_bucket(Bucket=args.bucket)

    def put(doc: tuple[str, bytes]) -> None:
        client.put_object(Bucket=args.bucket, Key=doc[0], Body=doc[1], ContentType="application/json")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for _ in pool.map(put, docs):
            pass
    seconds = time.monotonic() - started
    Path(args.out).write_text(json.dumps({"documents": len(docs), "seconds": round(seconds, 3),
                                          "puts_per_second": round(len(docs) / seconds, 1),
                                          "bytes": sum(len(b) for _, b in docs), "workers": args.workers,
                                          "ids": [key[4:-5] for key, _ in docs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
