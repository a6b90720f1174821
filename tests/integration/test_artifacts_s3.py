"""S3Store against a real moto server on loopback: the code path AWS uses, another endpoint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from peers.moto_server import REGION, MotoServer, aws_fixture, moto_fixture  # noqa: F401

from broker.artifacts import ArtifactError, ArtifactNotFound, InvalidKey, store_from_url
from broker.artifacts.s3 import MIB, S3Store


async def make_bucket(aws: MotoServer, name: str = "artifacts") -> None:
    async with get_session().create_client("s3", **aws.client_kwargs()) as s3:
        await s3.create_bucket(Bucket=name)


@pytest.fixture
async def s3_store(aws: MotoServer) -> AsyncIterator[Callable[..., S3Store]]:
    """A factory of stores on the moto server; each is closed after the test."""
    made: list[S3Store] = []

    def make(url: str = "s3://artifacts/team/a", **opts: object) -> S3Store:
        store = store_from_url(url, endpoint_url=aws.url, region=REGION,
                               client_options=aws.credentials(), **opts)
        assert isinstance(store, S3Store)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def raw_keys(aws: MotoServer, bucket: str = "artifacts") -> list[str]:
    async with get_session().create_client("s3", **aws.client_kwargs()) as s3:
        r = await s3.list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in r.get("Contents", []))


async def test_put_get_exists_list(
    aws: MotoServer, s3_store: Callable[..., S3Store], tmp_path: Path
) -> None:
    await make_bucket(aws)
    store = s3_store()
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello s3\n")
    info = await store.put_file(src)
    assert (info.sha256, info.size) == (hashlib.sha256(b"hello s3\n").hexdigest(), 9)
    assert await store.put_bytes(b"hello s3\n") == info  # stored once
    other = await store.put_bytes(b"other")
    assert await raw_keys(aws) == sorted(
        f"team/a/objects/{s[:2]}/{s[2:]}" for s in (info.sha256, other.sha256)
    )
    assert await store.exists(info.sha256) and await store.size(other.sha256) == 5
    assert sorted([k async for k in store.iter_keys()]) == sorted([info.sha256, other.sha256])
    dest = tmp_path / "sub" / "copy.txt"
    assert await store.get_file(info.sha256, dest) == 9
    assert dest.read_bytes() == b"hello s3\n"
    assert b"".join([c async for c in store.iter_bytes(info.sha256, 4)]) == b"hello s3\n"
    elsewhere = s3_store("s3://artifacts/team/b")  # another prefix sees nothing
    assert not await elsewhere.exists(info.sha256)
    assert [k async for k in elsewhere.iter_keys()] == []


async def test_missing_and_invalid_keys(
    aws: MotoServer, s3_store: Callable[..., S3Store], tmp_path: Path
) -> None:
    await make_bucket(aws)
    store = s3_store()
    missing = hashlib.sha256(b"nope").hexdigest()
    assert not await store.exists(missing) and await store.size(missing) is None
    dest = tmp_path / "d.txt"
    dest.write_text("keep")
    with pytest.raises(ArtifactNotFound):
        await store.get_file(missing, dest)
    with pytest.raises(ArtifactNotFound):
        _ = [c async for c in store.iter_bytes(missing)]
    with pytest.raises(InvalidKey):
        await store.get_file("../../etc/passwd", dest)
    with pytest.raises(InvalidKey):
        await store.exists("objects/" + "a" * 64)
    assert dest.read_text() == "keep" and os.listdir(tmp_path) == ["d.txt"]


async def test_corrupt_object_is_refused_on_download(
    aws: MotoServer, s3_store: Callable[..., S3Store], tmp_path: Path
) -> None:
    await make_bucket(aws)
    store = s3_store()
    info = await store.put_bytes(b"good bytes")
    async with get_session().create_client("s3", **aws.client_kwargs()) as s3:
        await s3.put_object(Bucket="artifacts", Key=store.key(info.sha256), Body=b"bad bytes")
    with pytest.raises(ArtifactError, match="corrupt"):
        await store.get_file(info.sha256, tmp_path / "x")
    assert os.listdir(tmp_path) == []


async def test_multipart_upload_of_a_large_file(
    aws: MotoServer, s3_store: Callable[..., S3Store], tmp_path: Path
) -> None:
    await make_bucket(aws)
    store = s3_store(multipart_threshold=5 * MIB, part_bytes=5 * MIB)
    data = os.urandom(5 * MIB) + b"tail" * 1000
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    info = await store.put_file(big)
    assert info.size == len(data)
    dest = tmp_path / "back.bin"
    assert await store.get_file(info.sha256, dest) == len(data)
    assert dest.read_bytes() == data


async def test_missing_bucket_is_an_error(
    aws: MotoServer, s3_store: Callable[..., S3Store], tmp_path: Path
) -> None:
    store = s3_store("s3://no-such-bucket/x")
    with pytest.raises(Exception, match="NoSuchBucket"):
        await store.put_bytes(b"x")
