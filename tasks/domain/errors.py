"""Typed errors. Each names what to fix (app, container, field, setting, ids) and never a secret."""

from __future__ import annotations

from collections.abc import Iterable


def _ids_preview(ids: Iterable[str], limit: int = 10) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


class KnackServicesError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(KnackServicesError):
    """The container config file, a CLI argument or a setting is wrong."""


class CredentialsError(KnackServicesError):
    """A credential block is missing and the environment cannot stand in for it."""


class KnackError(KnackServicesError):
    """Knack refused a request, or answered in a way we cannot use."""

    def __init__(self, message: str, *, app: str | None = None, container: str | None = None,
                 url: str | None = None, status: int | None = None) -> None:
        self.app, self.container, self.url, self.status = app, container, url, status
        where = ", ".join(f"{k} {v}" for k, v in (("app", app), ("container", container), ("url", url)) if v)
        super().__init__(f"{message} ({where})" if where else message)


class KnackQuotaError(KnackError):
    """Starting the fetch would take the app's daily Knack quota below the configured floor."""


class RecordError(KnackServicesError):
    """A record cannot be stored or published as it is (bad id, bad value)."""

    def __init__(self, message: str, *, app: str, container: str, record_id: str | None) -> None:
        self.app, self.container, self.record_id = app, container, record_id
        super().__init__(f"{message} (app {app}, container {container}, record {record_id!r})")


class StoreError(KnackServicesError):
    """The record store (S3 or the local folder) cannot be read or written."""


class LockLost(StoreError):
    """This run no longer holds its lock (taken over, or its lease lapsed): it writes nothing more."""


class SocrataError(KnackServicesError):
    """Socrata refused a request."""


class SocrataRejectedRows(SocrataError):
    """Socrata reported errors for some rows of an upsert."""

    def __init__(self, resource_id: str, ids: Iterable[str], detail: str) -> None:
        self.resource_id = resource_id
        self.ids = list(ids)
        super().__init__(f"Socrata dataset {resource_id} rejected rows [{_ids_preview(self.ids)}]: {detail}")


class AgolError(KnackServicesError):
    """ArcGIS Online refused a request."""


class AgolEditFailed(AgolError):
    """Some features of an edit were not applied."""

    def __init__(self, layer: str, ids: Iterable[str], detail: str) -> None:
        self.layer = layer
        self.ids = list(ids)
        super().__init__(f"ArcGIS layer {layer} refused features [{_ids_preview(self.ids)}]: {detail}")


class UnpublishableRecords(KnackServicesError):
    """Some stored records cannot be turned into rows or features (an unreadable value); the rest was
    published, and the destination's cursor stays put until they are fixed in Knack."""

    def __init__(self, destination: str, failures: Iterable[tuple[str, str]]) -> None:
        self.failures = list(failures)
        self.ids = [rid for rid, _ in self.failures]
        shown = "; ".join(f"{rid}: {why}" for rid, why in self.failures[:5])
        more = f" (+{len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{destination}: {len(self.ids)} records cannot be published and were left out "
                         f"[{_ids_preview(self.ids)}]: {shown}{more}; fix them in Knack and run again")


class DeletesHeldBack(KnackServicesError):
    """The mass-delete guard (or an untrustworthy answer from Knack) held deletes back; the rest was done."""
