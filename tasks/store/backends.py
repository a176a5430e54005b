"""Byte storage under string keys: an S3 bucket, or a local folder with the same layout.

Everything above this module (layout, manifests, cursors) is the same for both, so the embedded
default (no bucket configured) exercises the production code paths.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tasks.domain.errors import StoreError
from tasks.domain.layout import body_etag

JSON = "application/json"


class Storage(Protocol):
    """What the record store needs from a place to keep bytes."""

    description: str

    def check(self) -> None: ...
    def put(self, key: str, body: bytes, content_type: str = JSON) -> str | None: ...  # the new ETag
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, prefix: str) -> Iterator[str]: ...
    def list_etags(self, prefix: str) -> dict[str, str]: ...  # key -> ETag of every object under prefix
    def create_if_absent(self, key: str, body: bytes) -> bool: ...


class S3Storage:
    """One bucket through one shared boto3 client (its pool sized by the caller)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        endpoint = getattr(getattr(client, "meta", None), "endpoint_url", "")
        self.description = f"s3://{bucket}" + (f" at {endpoint}" if endpoint else "")

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", type(exc).__name__)
        hint = " (does the bucket exist?)" if code == "NoSuchBucket" else ""
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


class LocalStorage:
    """A folder laid out exactly like the bucket; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.description = f"local folder {self.root}"

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
