"""Find the credentials for a system and environment: the saved block first, then the environment.

Block names: ``knack-<app>-<env>``, ``socrata-<env>``, ``agol-<env>``, ``s3-<env>`` (a prefect-aws
``S3Bucket``). When a block does not exist, the seed's environment variables stand in for it, so
``docker run --env-file`` and local runs keep working. This is the only module that reads them (besides
``save_blocks.py``, the CLI that saves them as blocks).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound

from blocks import ArcGISCredentials, KnackCredentials, SocrataCredentials
from tasks.domain.errors import CredentialsError

if TYPE_CHECKING:
    from prefect_aws import S3Bucket

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
        # called outside an event loop, Prefect's dual sync/async load returns the block itself
        return cast(B, cls.load(name))
    except ValueError as exc:
        if isinstance(exc.__cause__, ObjectNotFound) or "Unable to find block document" in str(exc):
            return None
        raise


def block_saved(block_type_slug: str, name: str) -> bool:
    """Whether a block of this type is saved under ``name``: one read of the Prefect API, with no need to
    import the block's class."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name=name, block_type_slug=block_type_slug, include_secrets=False)
        except ObjectNotFound:
            return False
    return True


def from_env(source: BlockSource[B]) -> B:
    """Build a block from environment variables; a missing one is an error naming the block and variables."""
    values = {field: os.environ[var] for field, var in source.env_map.items() if os.environ.get(var)}
    missing = [source.env_map[f] for f in source.required if f not in values]
    if missing:
        wanted = ", ".join(source.env_map[f] for f in source.required)
        raise CredentialsError(
            f"no {source.cls.__name__} block named {source.name!r}, and the environment lacks "
            f"{', '.join(missing)}: create the block (see docs/guide.md, 'Credentials') or set {wanted}"
        )
    return source.cls(**values)


def resolve(source: BlockSource[B]) -> B:
    """The block if saved, else one built from the environment; where it came from is logged once a run."""
    block = load_block(source.cls, source.name)
    if block is not None:
        say_source(source.name, f"block {source.name}")
        return block
    built = from_env(source)
    used = [var for field, var in source.env_map.items() if getattr(built, field, None) not in (None, "")]
    say_source(source.name, f"environment variables {', '.join(used)} (no block named {source.name})",
               fallback=True)
    return built


_SAID: set[tuple[str, str, str]] = set()
_SAID_LOCK = threading.Lock()


def credential_source_line(name: str, where: str) -> str:
    """The log line that says where the credentials ``name`` came from (a name, never a value)."""
    return f"credentials {name}: from {where}"


def say_source(name: str, where: str, *, fallback: bool = False) -> bool:
    """Log where the credentials ``name`` came from, once per flow run (once per process outside a run).

    A fallback to environment variables in prod is a warning: prod is expected to use its blocks."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else ""
    with _SAID_LOCK:
        if (run_id, name, where) in _SAID:
            return False
        _SAID.add((run_id, name, where))
    line = credential_source_line(name, where)
    level = logging.WARNING if fallback and name.endswith("-prod") else logging.INFO
    _logger().log(level, line)
    return True


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


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
    """Where the S3 store lives and how to reach it; ``connect()`` builds the one shared client."""

    bucket: str
    connector: Callable[[int], tuple[Any, Any]]  # max_pool_connections -> (boto3 S3 client, its session)
    source: str     # "block s3-dev" or "environment": said in logs, never a secret
    endpoint_url: str | None = None

    def connect(self, max_pool_connections: int) -> tuple[Any, Any]:
        """(client, session): the session's ``get_credentials()`` is the chain the client signs with."""
        return self.connector(max_pool_connections)

    def client(self, max_pool_connections: int) -> Any:
        return self.connect(max_pool_connections)[0]


def s3_retries() -> dict[str, Any]:
    """boto3's retry settings: 8 attempts, adaptive mode, unless the standard ``AWS_MAX_ATTEMPTS`` /
    ``AWS_RETRY_MODE`` variables say otherwise (an explicit client config would otherwise ignore them)."""
    attempts, mode = os.environ.get("AWS_MAX_ATTEMPTS", "8").strip(), os.environ.get("AWS_RETRY_MODE", "adaptive")
    if not attempts.isdigit() or int(attempts) < 1 or mode not in ("legacy", "standard", "adaptive"):
        raise CredentialsError(f"AWS_MAX_ATTEMPTS must be a whole number >= 1 and AWS_RETRY_MODE one of legacy, "
                               f"standard, adaptive; got {attempts!r} and {mode!r}")
    return {"max_attempts": int(attempts), "mode": mode}


def _env_client(max_pool_connections: int) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=max_pool_connections, retries=s3_retries(),
                    connect_timeout=10, read_timeout=60)
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, config=config), session


@dataclass(frozen=True)
class StoreChoice:
    """Which store a run uses and why (said in its first log line and its artifact; never a secret)."""

    location: S3Location | None  # None: the local folder store
    reason: str
    warning: str | None = None   # said at every run (prod on a local folder)


_FOUND: dict[tuple[tuple[str, str], ...], str | None] = {}


def boto3_credential_source() -> str | None:
    """How boto3's default chain finds credentials, looked up once per process and environment (the chain
    may ask the instance metadata service); see ``_find_credentials``."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_") or k == "HOME"))
    if key not in _FOUND:
        _FOUND[key] = _find_credentials()
    return _FOUND[key]


def _find_credentials() -> str | None:
    """How boto3's default credential chain finds credentials (``env``, ``shared-credentials-file``,
    ``iam-role``, ``container-role``, ``sso``, ...), or None when it finds none. Only the method is
    returned, never the credentials."""
    import boto3

    try:
        found = boto3.session.Session().get_credentials()
    except Exception:  # noqa: BLE001 - a broken profile is "none found"; boto3 says why when it is used
        return None
    return (getattr(found, "method", None) or "found") if found is not None else None


class _RememberedBlock:
    """The block ``s3-<env>`` as a run's first look found it (None: there is none)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one load, however many of the run's threads ask at once
        self.looked = False
        self.block: S3Bucket | None = None


# env → what the current run remembers; a context variable, so it follows the run into the threads of its
# tasks and subflows (Prefect's task runner and flows/sync.py start them in a copy of the run's context)
# and no further: another run in the same process keeps its own.
_REMEMBERED: ContextVar[dict[str, _RememberedBlock] | None] = ContextVar("remembered_s3_blocks", default=None)


@contextmanager
def remembering_s3_block(env: str) -> Iterator[None]:
    """While this is open (a flow run), ``choose_store`` loads the block ``s3-<env>`` at most once, and
    remembers its absence too; a subflow inside it shares what its parent run found. When the run that
    opened it ends, it is forgotten: the next run sees a block saved, changed or deleted in between. A
    failed load is not remembered: the next caller tries again."""
    current = _REMEMBERED.get() or {}
    if env in current:  # an enclosing run remembers it already
        yield
        return
    token = _REMEMBERED.set({**current, env: _RememberedBlock()})
    try:
        yield
    finally:
        _REMEMBERED.reset(token)


# prefect-aws's S3Bucket block type (tests/integration/test_credentials.py checks it against the class)
S3_BLOCK_TYPE = "s3-bucket"


def _s3_block(env: str) -> S3Bucket | None:
    """The prefect-aws ``S3Bucket`` block ``s3-<env>``, or None; loaded once while a run remembers it."""
    entry = (_REMEMBERED.get() or {}).get(env)
    if entry is None:
        return _load_s3_block(env)
    with entry.lock:
        if not entry.looked:
            entry.block = _load_s3_block(env)
            entry.looked = True
        return entry.block


def _load_s3_block(env: str) -> S3Bucket | None:
    """prefect-aws takes 0.4 s to import: it is imported only when the block is saved."""
    if not block_saved(S3_BLOCK_TYPE, f"s3-{env}"):
        return None
    from prefect_aws import S3Bucket

    return load_block(S3Bucket, f"s3-{env}")


def choose_store(env: str, bucket: str | None, store: str) -> StoreChoice:
    """The store for ``env`` and why.

    Order: the prefect-aws ``S3Bucket`` block ``s3-<env>``; ``store: local`` (a warning in prod); with
    ``store: s3``, or ``auto`` when boto3's default chain finds credentials (environment, shared files,
    SSO, instance profile, ECS task role, IRSA), the config's bucket through that chain. ``auto`` with
    nothing found is the local folder in dev and an error in prod: prod never falls back to a folder
    that dies with its container. Inside ``remembering_s3_block(env)`` the block is looked up once.
    """
    block = _s3_block(env)
    if block is not None:
        def block_client(pool: int, _block: S3Bucket = block) -> tuple[Any, Any]:
            from botocore.config import Config

            params = _block.credentials.aws_client_parameters
            override = params.get_params_override() if params else {}
            base = override.pop("config", None)
            config = Config(max_pool_connections=pool, retries=s3_retries(), connect_timeout=10, read_timeout=60)
            config = base.merge(config) if base is not None else config
            session = _block.credentials.get_boto3_session()
            return session.client("s3", config=config, **override), session

        params = block.credentials.aws_client_parameters
        endpoint = getattr(params, "endpoint_url", None) if params else None
        location = S3Location(block.bucket_name, block_client, f"block s3-{env}", str(endpoint) if endpoint else None)
        return StoreChoice(location, f"the block s3-{env} exists")
    if store == "local":
        warning = (f"env {env} writes to a local folder (store: local in the config): nothing reaches S3, and "
                   "a container's folder dies with it") if env == "prod" else None
        return StoreChoice(None, "store: local in the config", warning)
    if not bucket:
        if store == "s3":
            raise CredentialsError("store: s3 needs a bucket: set 'bucket' in the config or save the block "
                                   f"s3-{env}")
        return _local_or_refuse(env, "store: auto and no bucket in the config")
    method = boto3_credential_source()
    location = S3Location(bucket, _env_client, "environment", os.environ.get("AWS_ENDPOINT_URL") or None)
    if method is not None:
        return StoreChoice(location, f"store: {store} and boto3's credential chain found credentials ({method})")
    if store == "s3":
        raise CredentialsError(f"store: s3, but boto3's credential chain finds no AWS credentials for bucket "
                               f"{bucket!r} (environment, shared credential/config files, SSO, instance or "
                               f"task role): configure one, or save the block s3-{env}")
    return _local_or_refuse(env, "store: auto and boto3's credential chain found no AWS credentials")


def _local_or_refuse(env: str, why: str) -> StoreChoice:
    if env == "prod":
        raise CredentialsError(f"env prod: {why}, and prod never falls back to a local folder: save the block "
                               "s3-prod, give the worker AWS credentials, or set store: local in the config "
                               "to mean it")
    return StoreChoice(None, why)


def s3_location(env: str, bucket: str | None, store: str) -> S3Location | None:
    """The S3 store for ``env``, or None for the local folder store (see ``choose_store``)."""
    return choose_store(env, bucket, store).location
