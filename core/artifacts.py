"""The artifact store: immutable blobs (report PDFs) addressed by key, on a local folder or S3.

``ARTIFACTS_URL`` chooses the backend (:func:`get_store`):

* a folder path (default ``./data/artifacts``; relative paths start at the project root) or
  ``file:///abs/path``: :class:`LocalArtifactStore`;
* ``s3://bucket/prefix``: :class:`S3ArtifactStore` through boto3, with the standard AWS
  credential chain (environment, shared files, instance role) and ``S3_ENDPOINT_URL`` for
  S3-compatible stores (MinIO, moto).

Artifacts are immutable: :meth:`ArtifactStore.put` refuses a key that already exists
(:class:`ArtifactExists`), atomically on both backends (a hard link on a local disk, a
conditional ``If-None-Match: *`` write on S3). Keys are relative paths of letters, digits and
``. _ - /``; no empty, ``.`` or ``..`` segment.

A store that fails raises a :class:`~core.errors.StorageUnavailable` naming the fault, with the
operating system's or S3's error as its cause (the API logs it): :class:`StorageFull` when
there is no space or quota left (ENOSPC, EDQUOT; MinIO's storage-full and quota codes),
:class:`StorageReadOnly` when writes are refused (EROFS, EACCES, EPERM; S3 AccessDenied), and
StorageUnavailable itself for anything else (an I/O error, an endpoint that does not answer).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from core.config import PROJECT_ROOT, Settings
from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StorageFull,
    StorageReadOnly,
    StorageUnavailable,
)

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class ArtifactExists(Conflict):
    """The key is taken: artifacts are never overwritten."""


@dataclass(frozen=True)
class StoredArtifact:
    """What a write stored: the key, its size and SHA-256 (hex)."""

    key: str
    size_bytes: int
    sha256: str


class ArtifactStore(Protocol):
    """Immutable blobs by key."""

    description: str
    """Where the artifacts go, for people (e.g. ``s3://bucket/prefix``)."""

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
            ) -> StoredArtifact: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise :class:`InvalidInput`."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidInput(
            f"artifact key {key!r}: use a relative path of letters, digits and . _ - / "
            "(no empty, '.' or '..' segments)"
        )
    return key


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_S3_CODES = frozenset({"XMinioStorageFull", "XMinioAdminBucketQuotaExceeded",
                            "QuotaExceeded"})
_READ_ONLY_S3_CODES = frozenset({"AccessDenied", "AllAccessDisabled"})
_DOWN_S3_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "500", "503"})


def storage_fault(where: str, doing: str, *, full: bool, read_only: bool, cause: str
                  ) -> StorageUnavailable:
    """The error for a store that failed while `doing` (e.g. "write 'reports/x.pdf'")."""
    if full:
        return StorageFull(
            f"The artifact store {where} is full ({cause}): could not {doing}, and nothing was "
            "recorded. An operator must free space or raise the quota; then retry.")
    if read_only:
        return StorageReadOnly(
            f"The artifact store {where} refuses writes ({cause}): could not {doing}, and "
            "nothing was recorded. An operator must make it writable (mount, permissions, "
            "credentials); then retry.")
    return StorageUnavailable(
        f"The artifact store {where} failed ({cause}): could not {doing}, and nothing was "
        "recorded. Retry later; if it persists, an operator must check the store.")


def os_fault(exc: OSError, where: str, doing: str, *, writing: bool) -> StorageUnavailable:
    """:func:`storage_fault` for an operating-system error."""
    name = errno.errorcode.get(exc.errno or 0, "OSError")
    return storage_fault(
        where, doing, full=exc.errno in _FULL_ERRNOS,
        read_only=writing and exc.errno in _READ_ONLY_ERRNOS,
        cause=f"{name}: {exc.strerror or exc}")


# --------------------------------------------------------------------------- local folder


class LocalArtifactStore:
    """Artifacts as files under a root folder (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
            ) -> StoredArtifact:
        """Write `data` under `key`; :class:`ArtifactExists` if the key is taken. A failed
        write leaves nothing behind (module docstring: the errors)."""
        path = self._path(key)
        doing = f"write '{key}'"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise os_fault(exc, self.description, doing, writing=True) from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # atomic, and fails if the key exists
        except FileExistsError:
            raise ArtifactExists(
                f"An artifact with key '{key}' already exists; artifacts are immutable."
            ) from None
        except OSError as exc:
            raise os_fault(exc, self.description, doing, writing=True) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return StoredArtifact(key=key, size_bytes=len(data), sha256=sha256_hex(data))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No artifact with key '{key}' in {self.description}.") from None
        except OSError as exc:
            raise os_fault(exc, self.description, f"read '{key}'", writing=False) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted."""
        if not self.root.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
        return sorted(k for k in keys if k.startswith(prefix))


# --------------------------------------------------------------------------- S3


class S3ArtifactStore:
    """Artifacts as objects under ``s3://bucket/prefix`` (boto3, standard credential chain)."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _fault(self, exc: Exception, doing: str, *, writing: bool) -> StorageUnavailable | None:
        """The storage error for a boto3 failure that is the store's (not a missing key or a
        taken one), or None when it is not a fault of the store."""
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, BotoCoreError):
            return storage_fault(self.description, doing, full=False, read_only=False,
                                 cause=type(exc).__name__)
        if not isinstance(exc, ClientError):
            return None
        code = self._code(exc)
        status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get(
            "HTTPStatusCode", 0)
        if code in _FULL_S3_CODES or status == 507:
            return storage_fault(self.description, doing, full=True, read_only=False,
                                 cause=code or "507")
        if code in _READ_ONLY_S3_CODES:
            return storage_fault(self.description, doing, full=False, read_only=writing,
                                 cause=code)
        if code in _DOWN_S3_CODES or int(status or 0) >= 500:
            return storage_fault(self.description, doing, full=False, read_only=False,
                                 cause=code or str(status))
        return None

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
            ) -> StoredArtifact:
        """Write `data` under `key` with a conditional write; :class:`ArtifactExists` if taken.

        S3 checks the body against the SHA-256 sent with it (``ChecksumSHA256``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256(data).digest()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=data,
                ContentType=content_type,
                ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
                Metadata={"sha256": digest.hex()},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise ArtifactExists(
                    f"An artifact with key '{key}' already exists in {self.description}; "
                    "artifacts are immutable."
                ) from None
            fault = self._fault(exc, f"write '{key}'", writing=True)
            if fault is None:
                raise
            raise fault from exc
        except BotoCoreError as exc:
            raise self._fault(exc, f"write '{key}'", writing=True) or exc from exc
        return StoredArtifact(key=key, size_bytes=len(data), sha256=digest.hex())

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        doing = f"read '{key}'"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise NotFound(f"No artifact with key '{key}' in {self.description}.") from None
            fault = self._fault(exc, doing, writing=False)
            if fault is None:
                raise
            raise fault from exc
        except BotoCoreError as exc:
            raise self._fault(exc, doing, writing=False) or exc from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted."""
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
            keys.extend(obj["Key"][len(root):] for obj in page.get("Contents", []))
        return sorted(keys)


# --------------------------------------------------------------------------- factory


def get_store(settings: Settings) -> ArtifactStore:
    """The store named by ``settings.artifacts_url`` (see the module docstring)."""
    url = settings.artifacts_url.strip()
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if not parsed.netloc:
            raise InvalidInput(f"ARTIFACTS_URL {url!r}: name a bucket, as in s3://bucket/prefix")
        return S3ArtifactStore(
            parsed.netloc, parsed.path, endpoint_url=settings.s3_endpoint_url
        )
    if url.startswith("file://"):
        url = urlparse(url).path
    elif "://" in url:
        raise InvalidInput(
            f"ARTIFACTS_URL {url!r}: use a folder path, file:///path or s3://bucket/prefix"
        )
    path = Path(url)
    return LocalArtifactStore(path if path.is_absolute() else PROJECT_ROOT / path)
