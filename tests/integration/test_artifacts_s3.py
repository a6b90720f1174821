"""S3Store against a real moto server on loopback: the code path AWS uses, another endpoint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from peers.moto_server import REGION, MotoServer, aws_fixture, moto_fixture  # noqa: F401

from broker.artifacts import ArtifactError, ArtifactNotFound, InvalidKey, store_from_url
from broker.artifacts.index import ArtifactRecord, record_artifacts
from broker.artifacts.s3 import MIB, S3Store
from broker.keys import Keys


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


async def test_the_api_serves_downloads_from_the_s3_store(
    aws: MotoServer, s3_store: Callable[..., S3Store], make_client: Any, rds: Any, keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`serve --artifacts s3://… --s3-endpoint-url …`: what a worker uploaded to S3 is listed
    and downloaded through the broker's API (credentials from the AWS chain, here env vars)."""
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(var, value)
    await make_bucket(aws)
    data = b"pressure,velocity\n1.0,2.0\n"
    info = await s3_store("s3://artifacts/team/runs").put_bytes(data)  # the worker's upload
    run = "r0s3test1"
    await rds.hset(keys.run(run), mapping={"owner": "admin", "state": "succeeded"})
    await record_artifacts(rds, keys, run, [ArtifactRecord(
        sha256=info.sha256, size=info.size, task="sim", name="out/fields.csv", attempt=1)])
    client = await make_client(artifacts_url="s3://artifacts/team/runs",
                               s3_endpoint_url=aws.url, aws_region=REGION)
    r = await client.get(f"/api/v1/runs/{run}/artifacts")
    assert r.status == 200, await r.text()
    [listed] = (await r.json())["artifacts"]
    assert (listed["sha256"], listed["name"]) == (info.sha256, "out/fields.csv")
    r = await client.get(f"/api/v1/runs/{run}/artifacts/{info.sha256}")
    assert r.status == 200, await r.text()
    assert await r.read() == data
    assert r.headers["Content-Disposition"] == 'attachment; filename="fields.csv"'
    other = hashlib.sha256(b"never uploaded").hexdigest()
    await record_artifacts(rds, keys, run, [ArtifactRecord(
        sha256=other, size=3, task="sim", name="lost.txt", attempt=1)])
    r = await client.get(f"/api/v1/runs/{run}/artifacts/{other}")
    assert r.status == 404 and "not in the store" in (await r.json())["error"]["message"]


def test_serve_takes_the_store_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.cli.main import build_parser
    from broker.cli.server import settings_from_args

    args = build_parser().parse_args(["serve", "--artifacts", "s3://b/p", "--s3-endpoint-url",
                                      "http://127.0.0.1:9", "--aws-region", "eu-west-1"])
    s = settings_from_args(args)
    assert (s.artifacts_url, s.s3_endpoint_url, s.aws_region) == (
        "s3://b/p", "http://127.0.0.1:9", "eu-west-1")
    monkeypatch.setenv("DAGBROKER_ARTIFACTS", "s3://env/bucket")
    monkeypatch.setenv("DAGBROKER_S3_ENDPOINT_URL", "http://127.0.0.1:8")
    s = settings_from_args(build_parser().parse_args(["serve"]))
    assert (s.artifacts_url, s.s3_endpoint_url) == ("s3://env/bucket", "http://127.0.0.1:8")
