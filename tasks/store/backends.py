"""Byte storage under string keys: an S3 bucket, or a local folder with the same layout.

Everything above this module (layout, manifests, cursors) is the same for both, so the embedded
default (no bucket configured) exercises the production code paths.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tasks import fence
from tasks.domain.errors import StoreError
from tasks.domain.layout import body_etag
from tasks.wire import last_deadline_passed

JSON = "application/json"


class Storage(Protocol):
    """What the record store needs from a place to keep bytes.

    Two kinds of ETag, kept apart on purpose:
    - a *content ETag* (``put``, ``list_etags``): the bare MD5 hex of the body, as ``body_etag`` computes it,
      compared with a body to tell whether it changed;
    - a *version* (``get_versioned``, ``put_if``, ``delete_if``): an opaque token exactly as the store gives it
      (S3's quoted ETag), only ever handed back to the same store as a condition.
    """

    description: str

    def check(self) -> None: ...
    def put(self, key: str, body: bytes, content_type: str = JSON) -> str | None: ...  # the content ETag
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, prefix: str) -> Iterator[str]: ...
    def list_etags(self, prefix: str) -> dict[str, str]: ...  # key -> content ETag of every object under prefix
    def create_if_absent(self, key: str, body: bytes) -> bool: ...
    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]: ...  # (body, version)
    def put_if(self, key: str, body: bytes, *, if_match: str | None = None,
               if_none_match: bool = False) -> str | None: ...  # the new version, None when refused
    def delete_if(self, key: str, etag: str) -> bool: ...  # etag: a version


_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404")


class S3Storage:
    """One bucket through one shared boto3 client (its pool sized by the caller)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:  # every attempt of a request checks the run's write fence (tasks/fence.py)
            events.register("before-send.s3", fence.check_before_send, unique_id="knack-services-fence")
        endpoint = getattr(getattr(client, "meta", None), "endpoint_url", "")
        self.description = f"s3://{bucket}" + (f" at {endpoint}" if endpoint else "")

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", type(exc).__name__)
        hint = " (does the bucket exist?)" if code == "NoSuchBucket" else ""
        if (seconds := last_deadline_passed()) is not None:
            hint += f" (no whole reply within the request deadline of {seconds:.3g} s)"
        if getattr(exc, "response", None) is None:  # no reply at all: a connection refused, dropped or cut
            return StoreError(f"cannot reach the S3 endpoint: {action} {self.description}/{key} failed: {code}{hint}")
        return StoreError(f"{action} {self.description}/{key} failed: {code}{hint}")

    def check(self) -> None:
        """Fail early, and clearly, when the endpoint is unreachable or the bucket missing."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"bucket {self.bucket!r} does not exist ({self.description}); "
                                 "create it or fix 'bucket' in the config / the s3 block") from None
            raise StoreError(f"cannot use bucket {self.bucket!r} ({self.description}): {code}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach the S3 endpoint for {self.description}: {exc}") from None

    def put(self, key: str, body: bytes, content_type: str = JSON) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("PUT", key, exc) from None
        return str(reply.get("ETag") or "").strip('"') or None

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail("GET", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("GET", key, exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("DELETE", key, exc) from None

    def list_keys(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("LIST", prefix, exc) from None

    def list_etags(self, prefix: str) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return {item["Key"]: str(item.get("ETag") or "").strip('"')
                    for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                    for item in page.get("Contents", [])}
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("LIST", prefix, exc) from None

    def create_if_absent(self, key: str, body: bytes) -> bool:
        """Conditional create (If-None-Match: *); False when the key already exists."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=JSON, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412",
                                                             "ConditionalRequestConflict"):
                return False
            raise self._fail("PUT", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("PUT", key, exc) from None

    # -- conditional writes (fencing): S3's If-None-Match / If-Match on PUT and DELETE ---------------
    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """(body, ETag) of ``key``; (None, None) when it does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            return reply["Body"].read(), reply["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None
            raise self._fail("GET", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("GET", key, exc) from None

    def put_if(self, key: str, body: bytes, *, if_match: str | None = None,
               if_none_match: bool = False) -> str | None:
        """PUT only if the object's ETag is ``if_match`` (or, with ``if_none_match``, only if it does not
        exist); the new ETag, or None when the condition was refused (someone else wrote first)."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            reply = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=JSON, **condition)
            return str(reply["ETag"])
        except ClientError as exc:
            if condition and exc.response.get("Error", {}).get("Code") in _REFUSED:
                # boto3 retries a PUT whose reply was lost (a 5xx, a timeout): the retry is refused by our own
                # write. Our bytes in place mean it landed.
                current, etag = self.get_versioned(key)
                return etag if current == body else None
            raise self._fail("PUT", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("PUT", key, exc) from None

    def delete_if(self, key: str, etag: str) -> bool:
        """DELETE only if the object's ETag is still ``etag``; False when it changed or is gone."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _REFUSED:
                return False
            raise self._fail("DELETE", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("DELETE", key, exc) from None


class LocalStorage:
    """A folder laid out exactly like the bucket; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.description = f"local folder {self.root}"
        self._cond = threading.Lock()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreError(f"key {key!r} escapes {self.description}")
        return path

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.description}: {exc.strerror}") from None

    def put(self, key: str, body: bytes, content_type: str = JSON) -> str | None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return body_etag(body)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()

    def list_etags(self, prefix: str) -> dict[str, str]:
        """Like S3's listing: each object's ETag, the MD5 of its bytes (every file is read)."""
        return {key: body_etag(body) for key in self.list_keys(prefix) if (body := self.get(key)) is not None}

    def create_if_absent(self, key: str, body: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        return True

    # -- conditional writes (fencing): a lock file, a compare, an atomic rename ---------------------
    def _guard(self) -> _FileGuard:
        """Held around every compare-and-write: this process's threads and other processes alike."""
        return _FileGuard(self.root / ".tmp-conditional.lock", self._cond)

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        body = self.get(key)
        return body, (version_of(body) if body is not None else None)

    def put_if(self, key: str, body: bytes, *, if_match: str | None = None,
               if_none_match: bool = False) -> str | None:
        with self._guard():
            current = self.get(key)
            if if_match and (current is None or version_of(current) != if_match):
                return None
            if if_none_match and not if_match and current is not None:
                return None
            self.put(key, body)
            return version_of(body)

    def delete_if(self, key: str, etag: str) -> bool:
        with self._guard():
            current = self.get(key)
            if current is None or version_of(current) != etag:
                return False
            self.delete(key)
            return True


def version_of(body: bytes) -> str:
    """The local store's version of a body: its MD5, quoted as S3 quotes a single-part upload's ETag."""
    return f'"{body_etag(body)}"'


class _FileGuard:
    """An exclusive ``flock`` on one file plus a thread lock (flock alone does not order threads that
    share a file description)."""

    def __init__(self, path: Path, thread_lock: threading.Lock) -> None:
        self.path = path
        self.thread_lock = thread_lock
        self.fd = -1

    def __enter__(self) -> _FileGuard:
        self.thread_lock.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            if self.fd >= 0:
                os.close(self.fd)
            self.thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        finally:
            self.thread_lock.release()
