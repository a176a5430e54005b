"""Save an environment's blocks from environment variables: ``python -m tasks.save_blocks --env prod --app APP``.

Each system whose variables are set gets its block (Knack: ``knack-<app>-<env>`` for every ``--app``;
``socrata-<env>``; ``agol-<env>``; ``s3-<env>`` from ``--bucket`` and the AWS variables). Systems with
no variables are skipped and said so; nothing is printed of any secret.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tasks.credentials import BlockSource, agol_source, from_env, knack_source, socrata_source
from tasks.domain.config import ENVS
from tasks.domain.errors import CredentialsError


def save_s3_block(env: str, bucket: str) -> str:
    """A prefect-aws S3Bucket (with its AwsCredentials) named ``s3-<env>``."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters
    from pydantic import SecretStr

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    credentials = AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=SecretStr(secret) if secret else None,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    )
    name = f"s3-{env}"
    S3Bucket(bucket_name=bucket, credentials=credentials).save(name, overwrite=True)
    return name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True, choices=ENVS)
    p.add_argument("--app", action="append", default=[], help="app name for a Knack block (repeatable)")
    p.add_argument("--bucket", default=None, help="save an s3-<env> block for this bucket")
    args = p.parse_args(argv)

    saved, skipped = [], []
    wanted: list[BlockSource[Any]] = [knack_source(app, args.env) for app in args.app]
    wanted += [socrata_source(args.env), agol_source(args.env)]
    for source in wanted:
        try:
            from_env(source).save(source.name, overwrite=True)
            saved.append(source.name)
        except CredentialsError as exc:
            skipped.append(f"{source.name}: {exc}")
    if args.bucket:
        saved.append(save_s3_block(args.env, args.bucket))
    for name in saved:
        print(f"saved block {name}")
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    return 0 if saved else 1


if __name__ == "__main__":
    sys.exit(main())
