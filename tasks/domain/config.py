"""The container config: which Knack containers to sync and where their records go.

One checked-in YAML file, keyed by app name, then container key. The seed's container properties keep
their names and meaning. Everything is validated at load; an error names the file, the app, the
container and the key to fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.domain.deletes import DELETE_LOOKUPS_PER_RUN, DeleteGuard
from tasks.domain.errors import ConfigError

CONFIG_ENV_VAR = "KNACK_SERVICES_CONFIG"
DEFAULT_CONFIG = Path("config") / "knack-services.yaml"
ENVS = ("prod", "dev")

_FIELD_KEY = r"^field_[0-9]+$"
_CONTAINER_KEY = r"^(object|view)_[0-9]+$"
_SCENE_KEY = r"^scene_[0-9]+$"
_RESOURCE_ID = r"^[a-z0-9]{4}-[a-z0-9]{4}$"
_CRON_LINE = r"^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){4}$"  # five fields, one space apart
_LAYER_FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_BLOCK_REF = r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$"
# What each pattern means, in words: a value that does not match is refused with
# "<key> must be <this>, got <value>" (``_describe``).
_SHAPES = {
    _FIELD_KEY: "a Knack field key like field_12",
    _CONTAINER_KEY: "object_N or view_N",
    _SCENE_KEY: "a Knack scene key like scene_3",
    _RESOURCE_ID: "a Socrata dataset id like abcd-1234",
    _CRON_LINE: "a cron line of five fields (minute hour day month weekday), e.g. '37 3 * * 0' for "
                "Sundays at 03:37",
    _LAYER_FIELD_NAME: "an ArcGIS field name (letters, digits, _)",
    _BLOCK_REF: "a Prefect block as <block-type-slug>/<block-name>, e.g. slack-webhook/knack-alerts",
}
_FIELD = re.compile(_FIELD_KEY)
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SOCRATA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _check_field_key(value: str, what: str) -> str:
    if not _FIELD.fullmatch(value):
        raise ValueError(f"{what} must be a Knack field key like field_12, got {value!r}")
    return value


class ContainerConfig(BaseModel):
    """One Knack object or view, and where its records go."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    app: str
    key: str = Field(pattern=_CONTAINER_KEY)
    description: str = ""
    scene_id: str | None = Field(default=None, pattern=_SCENE_KEY)
    modified_date_field_id: str = Field(pattern=_FIELD_KEY)
    location_fields: tuple[str, ...] = ()
    # Socrata
    socrata_resource_id: str | None = Field(default=None, pattern=_RESOURCE_ID)
    socrata_field_map: dict[str, str] = Field(default_factory=dict)
    no_replace_socrata: bool = False
    append_timestamp_column: str | None = None
    # ArcGIS Online
    service_id: str | None = None
    layer_id: int = 0
    agol_kind: Literal["layer", "table"] = "layer"
    upsert_matching_field: str = Field(default="id", pattern=_LAYER_FIELD_NAME)
    # Analytics table (Delta Lake) beside the records: None means the settings' ``tables`` default
    table: bool | None = Field(default=None, strict=True)

    @field_validator("location_fields", mode="before")
    @classmethod
    def _location_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value  # YAML has lists; strict tuples refuse them

    @field_validator("location_fields")
    @classmethod
    def _locations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_field_key(v, "location_fields entry") for v in value)

    @field_validator("socrata_field_map")
    @classmethod
    def _field_map(cls, value: dict[str, str]) -> dict[str, str]:
        for field, name in value.items():
            _check_field_key(field, "socrata_field_map key")
            if not isinstance(name, str) or not _SOCRATA_NAME.fullmatch(name):
                raise ValueError(f"socrata_field_map[{field}] must be a lower-case column name, got {name!r}")
            if name == "id":
                raise ValueError(f"socrata_field_map[{field}] cannot be 'id': that column holds the Knack record id")
        return value

    @field_validator("append_timestamp_column")
    @classmethod
    def _timestamp_column(cls, value: str | None) -> str | None:
        if value is not None and (not _SOCRATA_NAME.fullmatch(value) or value == "id"):
            raise ValueError(f"append_timestamp_column must be a lower-case column name other than id, got {value!r}")
        return value

    @model_validator(mode="after")
    def _views_need_a_scene(self) -> ContainerConfig:
        if self.key.startswith("view_") and self.scene_id is None:
            raise ValueError(f"{self.key} is a view: set scene_id (the scene that holds it)")
        if self.key.startswith("object_") and self.scene_id is not None:
            raise ValueError(f"{self.key} is an object: scene_id applies to views only")
        return self

    @property
    def publishes_to_socrata(self) -> bool:
        return self.socrata_resource_id is not None

    @property
    def publishes_to_agol(self) -> bool:
        return self.service_id is not None

    @property
    def publishes_to_table(self) -> bool:
        return bool(self.table)

    def destinations(self) -> list[str]:
        """The destinations this container publishes to, in publishing order."""
        return [name for name, on in (("socrata", self.publishes_to_socrata),
                                      ("agol", self.publishes_to_agol),
                                      ("table", self.publishes_to_table)) if on]


class AppConfig(BaseModel):
    """Settings of one Knack app and its containers."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    rate_limit_per_second: float = Field(default=10, gt=0, le=100)
    quota_floor: int = Field(default=0, ge=0)
    # slots of the shared Prefect limit one API call takes (None: max(10, rate_limit_per_second)); larger
    # batches spend fewer API calls, smaller ones let concurrent runs of the app take turns sooner
    rate_limit_batch: int | None = Field(default=None, ge=1, le=1000, strict=True)
    # the Knack plan's requests a day (Starter 1,000, Pro 5,000, Corporate 10,000, Plus 25,000), shared by
    # the apps of one account: apps with the same quota_account share one quota (default: the app alone)
    daily_quota: int = Field(default=5000, ge=1, le=1_000_000_000, strict=True)
    quota_account: str | None = Field(default=None, min_length=1, max_length=100)
    containers: dict[str, ContainerConfig]

    @model_validator(mode="after")
    def _floor_below_quota(self) -> AppConfig:
        if self.quota_floor >= self.daily_quota:
            raise ValueError(f"quota_floor ({self.quota_floor}) must be below daily_quota ({self.daily_quota})")
        return self

    @property
    def account(self) -> str:
        """Whose daily quota the app's requests count against."""
        return self.quota_account or self.name


class Settings(BaseModel):
    """Store settings shared by every app (the config file's top-level keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    bucket: str | None = Field(
        default="atd-knack-services",
        description="S3 bucket of the store; the records live under <env>/<app>/<container>/ in it")
    store: Literal["auto", "s3", "local"] = Field(
        default="auto",
        description="auto: S3 when an s3-<env> block exists or boto3 finds credentials, else the local folder "
                    "in dev and an error in prod; s3: always S3 (needs bucket); local: always local_store")
    local_store: str = Field(default=".data", description="folder of the local store, laid out like the bucket")
    socrata_chunk_size: int = Field(default=5000, ge=1, le=50000, description="rows per Socrata upsert")
    agol_chunk_size: int = Field(default=1000, ge=1, le=5000, description="features per ArcGIS edit")
    store_workers: int = Field(default=16, ge=1, le=128,
                               description="concurrent S3 requests (and the size of the connection pool)")
    lock_ttl_seconds: int = Field(
        default=60, ge=1,
        description="a run lock's life: a heartbeat every ttl/4; writes stop ttl/2 after the last heartbeat "
                    "sent; a lock left unchanged for ttl is dead and taken over (tasks/store/locks.py)")
    request_deadline_seconds: float = Field(
        default=20, gt=0, le=600,
        description="Whole-request deadline (connect, send and the full reply) of every request to Knack, "
                    "S3, Socrata and ArcGIS, even when a server trickles bytes; writes are further capped at "
                    "0.4 × lock_ttl_seconds (tasks/domain/deadlines.py)")
    knack_rows_per_page: int = Field(default=1000, ge=1, le=1000,
                                     description="records per Knack page (1000 is Knack's maximum)")
    knack_cursor_lag_seconds: int = Field(
        default=120, ge=0, le=86400,
        description="the Knack cursor trails the fetch start (on Knack's clock) by this much")
    delete_guard_share: float = Field(
        default=0.05, ge=0, le=1,
        description="a run that would delete more than this share of a container's records (and more than "
                    "delete_guard_min) deletes none of them")
    delete_guard_min: int = Field(default=10, ge=0,
                                  description="a run may always delete up to this many records")
    publish_time_limit_seconds: int = Field(
        default=6600, ge=10, le=86400,
        description="a publish (one destination of one container) that runs longer fails: its lock is "
                    "released and its cursor left where it was")
    republish_cron: str | None = Field(
        default=None, pattern=_CRON_LINE,
        description="when the sync deployments resend every record to every destination "
                    "(scripts/deployments.py); none: never")
    alert_block: str | None = Field(
        default=None, pattern=_BLOCK_REF,
        description="the Prefect notification block prod alerts are sent through (scripts/alerts.py), as "
                    "<block-type-slug>/<block-name>, e.g. slack-webhook/knack-alerts; none: no alerts installed")
    tables: bool = Field(
        default=False, strict=True,
        description="an analytics table (Delta Lake, <env>/<app>/_tables/<container>/) for every container "
                    "that does not say table: false")
    table_compact_every: int = Field(default=24, ge=0, le=10_000,
                                     description="compact and vacuum a table once every this many commits (0: never)")
    table_retention_hours: int = Field(
        default=168, ge=0, le=24 * 365,
        description="vacuum keeps the files that versions younger than this need (time travel, slow readers)")
    table_batch_rows: int = Field(default=10_000, ge=1, le=1_000_000,
                                  description="rows per Arrow batch streamed into a table's one commit per run")
    delete_lookups_per_run: int = Field(
        default=DELETE_LOOKUPS_PER_RUN, ge=0, le=100_000,
        description="single-record look-ups one full run may spend confirming delete candidates; beyond "
                    "it (or below the app's quota_floor) a second whole listing confirms them instead "
                    "(docs/guide.md: \"Look-ups within the quota\")")

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.store == "s3" and not self.bucket:
            raise ValueError("store: s3 needs a bucket")
        return self


class Config(BaseModel):
    """The whole validated file."""

    model_config = ConfigDict(frozen=True)

    path: str
    settings: Settings
    apps: dict[str, AppConfig]

    def app(self, name: str) -> AppConfig:
        """The app called ``name``, or an error listing the configured ones."""
        if name not in self.apps:
            known = ", ".join(sorted(self.apps)) or "none"
            raise ConfigError(f"{self.path}: unknown app {name!r} (configured apps: {known})")
        return self.apps[name]

    def container(self, app: str, key: str) -> ContainerConfig:
        """One container's config, or an error naming the file, the app and the known containers."""
        containers = self.app(app).containers
        if key not in containers:
            known = ", ".join(sorted(containers)) or "none"
            raise ConfigError(f"{self.path}: app {app!r} has no container {key!r} (configured: {known})")
        return containers[key]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(container)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        pattern = str((err.get("ctx") or {}).get("pattern", ""))
        if err["type"] == "string_pattern_mismatch" and (shape := _SHAPES.get(pattern)):
            parts.append(f"{loc} must be {shape}, got {err.get('input')!r}")
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif not err["type"].startswith("value_error") and not isinstance(err.get("input"), dict | list):
            msg += f", got {err.get('input')!r}"  # e.g. "layer_id: Input should be a valid integer, got True"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_config(raw: object, path: str) -> Config:
    """Validate the parsed YAML document; the error names the file, app, container and key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'apps' at the top level")
    unknown = sorted(set(raw) - {"apps", *Settings.model_fields})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}")
    try:
        settings = Settings(**{k: v for k, v in raw.items() if k != "apps"})
    except ValidationError as exc:
        raise ConfigError(f"{path}: settings: {_describe(exc)}") from None
    apps: dict[str, AppConfig] = {}
    for app_name, app_raw in (raw.get("apps") or {}).items():
        where = f"{path}: app {app_name!r}"
        if not isinstance(app_name, str) or not _APP_NAME.fullmatch(app_name):
            raise ConfigError(f"{where}: app names are lower-case letters, digits and dashes")
        if not isinstance(app_raw, dict) or not isinstance(app_raw.get("containers"), dict):
            raise ConfigError(f"{where}: expected a mapping with a 'containers' mapping")
        containers: dict[str, ContainerConfig] = {}
        for key, body in app_raw["containers"].items():
            try:
                body = {} if body is None else body
                if isinstance(body, dict) and body.get("table") is None:  # the settings' default
                    body = {**body, "table": settings.tables}
                containers[key] = ContainerConfig(app=app_name, key=key, **(body or {}))
            except ValidationError as exc:
                raise ConfigError(f"{where}, container {key!r}: {_describe(exc)}") from None
            except TypeError as exc:  # a non-mapping container body
                raise ConfigError(f"{where}, container {key!r}: expected a mapping ({exc})") from None
        try:
            apps[app_name] = AppConfig(name=app_name, containers=containers,
                                       **{k: v for k, v in app_raw.items() if k != "containers"})
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_describe(exc)}") from None
    return Config(path=path, settings=settings, apps=apps)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key repeated in one mapping: plain YAML keeps the last one, so a
    container pasted twice would silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the config is: ``explicit``, else $KNACK_SERVICES_CONFIG, else config/knack-services.yaml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV_VAR):
        return Path(os.environ[CONFIG_ENV_VAR])
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return Path(__file__).resolve().parents[2] / DEFAULT_CONFIG


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file."""
    path = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror} "
                          f"(set --config or ${CONFIG_ENV_VAR})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, str(path))


def check_env(env: str) -> str:
    """Only ``prod`` and ``dev`` are environments (they are S3 prefixes and block-name suffixes)."""
    if env not in ENVS:
        raise ConfigError(f"env must be 'prod' or 'dev', got {env!r}")
    return env


def load_container(app: str, container: str, env: str, path: str | os.PathLike[str] | None = None
                   ) -> tuple[Config, AppConfig, ContainerConfig]:
    """Validate the env, load the config, and look up one app and container (errors name what to fix)."""
    check_env(env)
    config = load_config(path)
    return config, config.app(app), config.container(app, container)


def delete_guard(settings: Settings, override: bool = False) -> DeleteGuard:
    """The mass-delete guard the settings describe (``override``: the run's ``--allow-mass-delete``)."""
    return DeleteGuard(max_share=settings.delete_guard_share, min_count=settings.delete_guard_min,
                       override=override)
