"""Files every replica can read: uploads, annotated trial runs, logs and reports.

One small interface over where blobs live: the local data dir by default (`<PORTAL_DATA_DIR>/blobs/`), or
S3-compatible object storage when PORTAL_BLOB_URL is `s3://bucket/prefix` (AWS S3, MinIO, Ceph, ...), which is what
several replicas on several hosts need. Keys are relative paths such as "imports/<job id>/upload.xlsx".
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3 deletes at most this many keys in one request.
_DELETE_CHUNK = 1000


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


def _checked(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under one folder; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); ValueError naming what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError("expected s3://bucket/prefix (the only object storage supported is S3-compatible)")
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise ValueError(f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)")
    if parts.query or parts.fragment:
        raise ValueError("expected s3://bucket/prefix without ?query or #fragment")
    prefix = parts.path.strip("/")
    if prefix:
        _checked(prefix)
    return bucket, prefix


class S3BlobStore:
    """Blobs as objects in an S3-compatible bucket, under an optional prefix.

    Endpoint, region and credentials come from the usual AWS variables and files (AWS_ENDPOINT_URL or
    AWS_ENDPOINT_URL_S3, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
    web identity in Kubernetes, instance roles). With an explicit endpoint (MinIO, Ceph, a test server) addresses are
    path-style, which every S3-compatible server accepts. A put is atomic: readers see the old object or the new one.
    Calls block (boto3): the services run them in worker threads, as they do database work.
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else _s3_client()

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix)

    def _name(self, key: str) -> str:
        key = _checked(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        body = reply["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def delete(self, key: str) -> None:
        # Deleting a missing object succeeds in S3, as unlink(missing_ok=True) does locally.
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under `prefix` (a folder such as "imports/<job id>")."""
        folder = self._name(prefix.rstrip("/")) + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        names = [item["Key"] for page in pages for item in page.get("Contents", ())]
        for start in range(0, len(names), _DELETE_CHUNK):
            chunk = names[start:start + _DELETE_CHUNK]
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": name} for name in chunk], "Quiet": True})


def _s3_client() -> Any:
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=20,
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint or None, config=config)


def open_blob_store(data_dir: Path, blob_url: str | None) -> BlobStore:
    """The store PORTAL_BLOB_URL names (s3://bucket/prefix), else files under `<data dir>/blobs`."""
    if blob_url:
        return S3BlobStore.from_url(blob_url)
    return LocalBlobStore(data_dir / "blobs")
