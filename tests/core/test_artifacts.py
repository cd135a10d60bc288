"""Artifact store: both backends through one interface — a local folder, and S3 over HTTP against
moto's S3 server on loopback (a real S3 API, not the in-process mock)."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from core.artifacts import (
    ArtifactExists,
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    get_store,
)
from core.config import Settings
from core.errors import InvalidInput, NotFound, StorageFull, StorageReadOnly, StorageUnavailable
from tests.filesystems import fill, tmpfs
from tests.s3server import moto_s3_server


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        yield url


def _bucket(endpoint: str) -> str:
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ArtifactStore(_bucket(endpoint), "reports/prod", endpoint_url=endpoint)


def test_artifacts_put_get_roundtrip_with_checksum(store: ArtifactStore) -> None:
    data = b"%PDF-1.7 some bytes \x00\xff" * 100
    stored = store.put("reports/experiment-1/a.pdf", data, content_type="application/pdf")
    assert stored.key == "reports/experiment-1/a.pdf"
    assert stored.size_bytes == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get("reports/experiment-1/a.pdf") == data
    assert store.exists("reports/experiment-1/a.pdf")
    assert not store.exists("reports/experiment-1/b.pdf")


def test_artifacts_are_immutable(store: ArtifactStore) -> None:
    store.put("k/one.pdf", b"first")
    with pytest.raises(ArtifactExists, match="immutable"):
        store.put("k/one.pdf", b"second")
    assert store.get("k/one.pdf") == b"first"


def test_artifacts_list_by_prefix(store: ArtifactStore) -> None:
    assert store.list() == []
    for key in ("reports/experiment-2/b.pdf", "reports/experiment-1/a.pdf", "other/c.bin"):
        store.put(key, key.encode())
    assert store.list() == ["other/c.bin", "reports/experiment-1/a.pdf",
                            "reports/experiment-2/b.pdf"]
    assert store.list("reports/experiment-1/") == ["reports/experiment-1/a.pdf"]


def test_artifacts_missing_key_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFound, match="nope.pdf"):
        store.get("nope.pdf")


@pytest.mark.parametrize("key", ["../escape.pdf", "/abs.pdf", "a//b.pdf", "a/./b", "", "a b"])
def test_artifacts_refuse_unsafe_keys(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="artifact key"):
        store.put(key, b"x")


def test_artifacts_local_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.put("a/b.pdf", b"x")
    with pytest.raises(ArtifactExists):
        store.put("a/b.pdf", b"y")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.pdf"]


def test_artifacts_s3_object_carries_checksum_metadata_and_prefix(s3_endpoint: str) -> None:
    bucket = _bucket(s3_endpoint)
    store = S3ArtifactStore(bucket, "/team/reports/", endpoint_url=s3_endpoint)
    data = b"report body"
    store.put("x/r.pdf", data, content_type="application/pdf")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    head = client.head_object(Bucket=bucket, Key="team/reports/x/r.pdf")
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["ContentType"] == "application/pdf"
    assert store.description == f"s3://{bucket}/team/reports"


def test_artifacts_get_store_reads_the_settings(s3_endpoint: str, tmp_path: Path) -> None:
    local = get_store(Settings(artifacts_url=str(tmp_path / "a")))
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "a"
    relative = get_store(Settings(artifacts_url="data/artifacts"))
    assert isinstance(relative, LocalArtifactStore) and relative.root.is_absolute()
    via_file = get_store(Settings(artifacts_url=f"file://{tmp_path}/b"))
    assert isinstance(via_file, LocalArtifactStore) and via_file.root == tmp_path / "b"
    bucket = _bucket(s3_endpoint)
    s3 = get_store(Settings(artifacts_url=f"s3://{bucket}/p", s3_endpoint_url=s3_endpoint))
    assert isinstance(s3, S3ArtifactStore) and (s3.bucket, s3.prefix) == (bucket, "p")
    s3.put("k.pdf", b"via settings")
    assert s3.get("k.pdf") == b"via settings"
    with pytest.raises(InvalidInput, match="ARTIFACTS_URL"):
        get_store(Settings(artifacts_url="ftp://host/x"))
    with pytest.raises(InvalidInput, match="bucket"):
        get_store(Settings(artifacts_url="s3:///prefix"))


# --------------------------------------------------------------------------- storage faults


def test_artifacts_local_full_filesystem_is_storage_full_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "small") as mount:
        (mount / "artifacts" / "reports").mkdir(parents=True)
        fill(mount)
        store = LocalArtifactStore(mount / "artifacts")
        with pytest.raises(StorageFull, match="is full .ENOSPC") as info:
            store.put("reports/a.pdf", b"%PDF" * 10_000)
        assert isinstance(info.value.__cause__, OSError)
        assert info.value.http_status == 503
        assert store.list() == []
        assert not any(p.name.startswith(".tmp-") for p in mount.rglob("*"))


def test_artifacts_local_read_only_filesystem_is_storage_read_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as mount:
        store = LocalArtifactStore(mount / "artifacts")
        with pytest.raises(StorageReadOnly, match="refuses writes .EROFS"):
            store.put("reports/a.pdf", b"%PDF")
        with pytest.raises(NotFound):
            store.get("reports/a.pdf")


def test_artifacts_s3_endpoint_that_does_not_answer_is_storage_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    store = S3ArtifactStore("artifacts", client=client)
    for call in (lambda: store.put("reports/a.pdf", b"%PDF"), lambda: store.get("r/a.pdf")):
        with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
            call()
