"""The blob store every replica reads: the same behaviour on the local data dir and on S3-compatible object storage
(moto's real server on loopback, reached through boto3 over HTTP), and PORTAL_BLOB_URL choosing between them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing.blobs import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store, parse_s3_url
from plumbing.config import ConfigError, load_settings
from tests.support.s3 import S3Server, s3_in_thread


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_in_thread("portal-blobs") as server:
        yield server


@pytest.fixture
def aws_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    request.getfixturevalue("aws_env")
    return S3BlobStore("portal-blobs", f"t/{tmp_path.name}")


def test_put_get_exists_delete(store: BlobStore) -> None:
    key = "imports/imp_1/rows.json"
    assert not store.exists(key)
    store.put(key, b'{"rows": []}')
    assert store.exists(key)
    assert store.get(key) == b'{"rows": []}'
    store.put(key, b"replaced")
    assert store.get(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is not an error


def test_a_missing_blob_is_a_key_error(store: BlobStore) -> None:
    with pytest.raises(KeyError):
        store.get("imports/nothing/here.xlsx")


def test_large_binary_blobs_round_trip(store: BlobStore) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB, every byte value
    store.put("imports/big/upload.xlsx", data)
    assert store.get("imports/big/upload.xlsx") == data


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/absolute", "a//b", "spaces in name", ""])
def test_keys_that_could_escape_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_delete_prefix_removes_one_folder_only(store: LocalBlobStore | S3BlobStore) -> None:
    for name in ("imports/job1/rows.json", "imports/job1/log.xlsx", "imports/job10/rows.json"):
        store.put(name, b"x")
    store.delete_prefix("imports/job1")
    assert not store.exists("imports/job1/rows.json") and not store.exists("imports/job1/log.xlsx")
    assert store.exists("imports/job10/rows.json")


def test_objects_live_under_the_prefix_and_every_replica_sees_them(aws_env: S3Server) -> None:
    writer = S3BlobStore("portal-blobs", "district/prod")
    reader = S3BlobStore("portal-blobs", "district/prod")  # another replica: its own client, same bucket
    other = S3BlobStore("portal-blobs", "district/test")
    writer.put("imports/imp_9/annotated.xlsx", b"workbook")
    assert "district/prod/imports/imp_9/annotated.xlsx" in aws_env.keys("district/")
    assert reader.get("imports/imp_9/annotated.xlsx") == b"workbook"
    assert not other.exists("imports/imp_9/annotated.xlsx")


def test_portal_blob_url_chooses_the_store(aws_env: S3Server, tmp_path: Path) -> None:
    chosen = open_blob_store(tmp_path, "s3://portal-blobs/school-a")
    assert isinstance(chosen, S3BlobStore) and (chosen.bucket, chosen.prefix) == ("portal-blobs", "school-a")
    chosen.put("x/y.txt", b"1")
    assert aws_env.keys("school-a/") == ["school-a/x/y.txt"]
    assert isinstance(open_blob_store(tmp_path, None), LocalBlobStore)


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://bucket", ("bucket", "")),
    ("s3://my.bucket-1/a/b/", ("my.bucket-1", "a/b")),
])
def test_s3_urls(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["file:///tmp/x", "s3://", "s3://Upper/x", "s3://b/../x", "s3://bucket/p?x=1",
                                 "gs://bucket/p"])
def test_a_bad_blob_url_stops_start_up_naming_the_variable(url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_BLOB_URL", url)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="PORTAL_BLOB_URL"):
        load_settings()


def test_object_storage_that_does_not_answer_is_an_error_not_a_missing_blob(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from tests.support.net import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = S3BlobStore("portal-blobs")
    with pytest.raises((BotoCoreError, ClientError)):
        store.get("imports/x/rows.json")
