"""Find the credentials for a system and environment: the saved block first, then the environment.

Block names: ``knack-<app>-<env>``, ``socrata-<env>``, ``agol-<env>``, ``s3-<env>`` (a prefect-aws
``S3Bucket``). When a block does not exist, the seed's environment variables stand in for it, so
``docker run --env-file`` and local runs keep working. This is the only module that reads them (besides
``save_blocks.py``, the CLI that saves them as blocks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound

from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials
from tasks.domain.errors import CredentialsError

B = TypeVar("B", bound=Block)

KNACK_ENV = {"app_id": "KNACK_APP_ID", "api_key": "KNACK_API_KEY", "api_url": "KNACK_API_URL"}
SOCRATA_ENV = {"domain": "SOCRATA_DOMAIN", "app_token": "SOCRATA_APP_TOKEN",
               "username": "SOCRATA_USERNAME", "password": "SOCRATA_PASSWORD"}
AGOL_ENV = {"url": "AGOL_URL", "username": "AGOL_USERNAME", "password": "AGOL_PASSWORD",
            "ca_bundle": "AGOL_CA_BUNDLE"}
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class BlockSource(Generic[B]):
    """Where one system's credentials come from: the block's type and name, and the variables that stand in."""

    cls: type[B]
    name: str
    env_map: dict[str, str]       # block field → environment variable
    required: tuple[str, ...]     # fields that must be set


def knack_source(app: str, env: str) -> BlockSource[KnackCredentials]:
    return BlockSource(KnackCredentials, f"knack-{app}-{env}", KNACK_ENV, ("app_id", "api_key"))


def socrata_source(env: str) -> BlockSource[SocrataCredentials]:
    return BlockSource(SocrataCredentials, f"socrata-{env}", SOCRATA_ENV, ("domain", "username", "password"))


def agol_source(env: str) -> BlockSource[ArcGISCredentials]:
    return BlockSource(ArcGISCredentials, f"agol-{env}", AGOL_ENV, ("username", "password"))


def load_block(cls: type[B], name: str) -> B | None:
    """The saved block called ``name``, or None when there is none."""
    try:
        return cls.load(name)
    except ValueError as exc:
        if isinstance(exc.__cause__, ObjectNotFound) or "Unable to find block document" in str(exc):
            return None
        raise


def from_env(source: BlockSource[B]) -> B:
    """Build a block from environment variables; a missing one is an error naming the block and variables."""
    values = {field: os.environ[var] for field, var in source.env_map.items() if os.environ.get(var)}
    missing = [source.env_map[f] for f in source.required if f not in values]
    if missing:
        wanted = ", ".join(source.env_map[f] for f in source.required)
        raise CredentialsError(
            f"no {source.cls.__name__} block named {source.name!r}, and the environment lacks "
            f"{', '.join(missing)}: create the block (see README, 'Credentials') or set {wanted}"
        )
    return source.cls(**values)


def resolve(source: BlockSource[B]) -> B:
    """The block if saved, else one built from the environment."""
    return load_block(source.cls, source.name) or from_env(source)


def knack_credentials(app: str, env: str) -> KnackCredentials:
    """Credentials for one Knack app: block ``knack-<app>-<env>`` or KNACK_APP_ID / KNACK_API_KEY."""
    return resolve(knack_source(app, env))


def socrata_credentials(env: str) -> SocrataCredentials:
    """Block ``socrata-<env>`` or SOCRATA_DOMAIN / SOCRATA_USERNAME / SOCRATA_PASSWORD."""
    return resolve(socrata_source(env))


def agol_credentials(env: str) -> ArcGISCredentials:
    """Block ``agol-<env>`` or AGOL_USERNAME / AGOL_PASSWORD (AGOL_URL defaults to arcgis.com)."""
    return resolve(agol_source(env))


@dataclass(frozen=True)
class S3Location:
    """Where the S3 store lives and how to reach it; ``client()`` builds the one shared client."""

    bucket: str
    client_factory: Any  # callable(max_pool_connections) -> boto3 S3 client
    source: str          # "block s3-dev" or "environment": said in logs, never a secret
    endpoint_url: str | None = None

    def client(self, max_pool_connections: int) -> Any:
        return self.client_factory(max_pool_connections)


def s3_retries() -> dict[str, Any]:
    """boto3's retry settings: 8 attempts, adaptive mode, unless the standard ``AWS_MAX_ATTEMPTS`` /
    ``AWS_RETRY_MODE`` variables say otherwise (an explicit client config would otherwise ignore them)."""
    attempts, mode = os.environ.get("AWS_MAX_ATTEMPTS", "8").strip(), os.environ.get("AWS_RETRY_MODE", "adaptive")
    if not attempts.isdigit() or int(attempts) < 1 or mode not in ("legacy", "standard", "adaptive"):
        raise CredentialsError(f"AWS_MAX_ATTEMPTS must be a whole number >= 1 and AWS_RETRY_MODE one of legacy, "
                               f"standard, adaptive; got {attempts!r} and {mode!r}")
    return {"max_attempts": int(attempts), "mode": mode}


def _env_client(max_pool_connections: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=max_pool_connections, retries=s3_retries(),
                    connect_timeout=10, read_timeout=60)
    return boto3.session.Session().client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                                          config=config)


def s3_location(env: str, bucket: str | None, store: str) -> S3Location | None:
    """The S3 store for ``env``, or None for the local folder store.

    Order: the prefect-aws ``S3Bucket`` block ``s3-<env>``; then, when the config names a bucket and
    ``store`` is ``s3`` (or ``auto`` with AWS settings in the environment), boto3's own credential chain.
    """
    from prefect_aws import S3Bucket

    block = load_block(S3Bucket, f"s3-{env}")
    if block is not None:
        def block_client(pool: int, _block: Any = block) -> Any:
            from botocore.config import Config

            params = _block.credentials.aws_client_parameters
            override = params.get_params_override() if params else {}
            base = override.pop("config", None)
            config = Config(max_pool_connections=pool, retries=s3_retries(), connect_timeout=10, read_timeout=60)
            config = base.merge(config) if base is not None else config
            return _block.credentials.get_boto3_session().client("s3", config=config, **override)

        params = block.credentials.aws_client_parameters
        endpoint = getattr(params, "endpoint_url", None) if params else None
        return S3Location(block.bucket_name, block_client, f"block s3-{env}", str(endpoint) if endpoint else None)
    if store == "local" or not bucket:
        return None
    if store == "s3" or any(os.environ.get(v) for v in (*AWS_ENV, "AWS_PROFILE")):
        return S3Location(bucket, _env_client, "environment", os.environ.get("AWS_ENDPOINT_URL") or None)
    return None
