"""LocalStore on a real directory: content addressing, atomic writes, keys that try to escape."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from broker.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactRecord,
    InvalidKey,
    LocalStore,
    pick_artifacts,
    store_from_url,
)
from broker.artifacts.s3 import S3Store
from worker.artifacts import store_from_settings
from worker.cli import parse_settings


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


async def test_content_addressed_layout_and_roundtrip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello\n")
    info = await store.put_file(src)
    assert (info.sha256, info.size) == (sha(b"hello\n"), 6)
    obj = tmp_path / "store" / "objects" / info.sha256[:2] / info.sha256[2:]
    assert obj.read_bytes() == b"hello\n"
    assert not obj.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # immutable
    again = await store.put_bytes(b"hello\n")  # same bytes: same object, stored once
    assert again == info
    assert await store.exists(info.sha256) and await store.size(info.sha256) == 6
    dest = tmp_path / "out" / "copy.txt"
    dest.parent.mkdir()
    dest.write_text("old")
    assert await store.get_file(info.sha256, dest) == 6
    assert dest.read_bytes() == b"hello\n"
    assert b"".join([c async for c in store.iter_bytes(info.sha256, 2)]) == b"hello\n"
    other = await store.put_bytes(b"")
    assert sorted([k async for k in store.iter_keys()]) == sorted([info.sha256, other.sha256])
    assert leftovers(tmp_path / "store") == []


async def test_missing_and_corrupt_objects_leave_dest_untouched(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    dest = tmp_path / "dest.txt"
    dest.write_text("keep")
    missing = sha(b"never stored")
    assert not await store.exists(missing) and await store.size(missing) is None
    with pytest.raises(ArtifactNotFound):
        await store.get_file(missing, dest)
    with pytest.raises(ArtifactNotFound):
        _ = [c async for c in store.iter_bytes(missing)]
    info = await store.put_bytes(b"original")
    obj = store.object_path(info.sha256)
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")  # bit rot, or someone editing the store by hand
    with pytest.raises(ArtifactError, match="corrupt"):
        await store.get_file(info.sha256, dest)
    assert dest.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["dest.txt", "store"]  # no temp file left


async def test_failed_put_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(FileNotFoundError):
        await store.put_file(tmp_path / "nope")
    with pytest.raises(IsADirectoryError):
        await store.put_file(tmp_path)
    assert leftovers(tmp_path / "store") == []
    assert [k async for k in store.iter_keys()] == []


@pytest.mark.parametrize("key", [
    "../x", "../" + "a" * 61, "ab/../../cd", "/etc/passwd", "A" * 64, "a" * 63, "a" * 65,
    "g" * 64, "", "a" * 62 + "/b", "a" * 64 + "\n",
])
async def test_keys_that_are_not_sha256_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(InvalidKey):
        await store.exists(key)
    with pytest.raises(InvalidKey):
        await store.size(key)
    with pytest.raises(InvalidKey):
        await store.get_file(key, tmp_path / "d")
    with pytest.raises(InvalidKey):
        _ = [c async for c in store.iter_bytes(key)]
    with pytest.raises(InvalidKey):
        store.object_path(key)
    assert not (tmp_path / "d").exists()


async def test_symlinked_object_dir_pointing_outside_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    info = await store.put_bytes(b"secret")
    fan = tmp_path / "store" / "objects" / info.sha256[:2]
    outside = tmp_path / "outside"
    fan.rename(outside)
    fan.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="outside the store"):
        await store.exists(info.sha256)
    with pytest.raises(ArtifactError, match="outside the store"):
        await store.get_file(info.sha256, tmp_path / "dest")
    (outside / info.sha256[2:]).chmod(0o644)
    (outside / info.sha256[2:]).unlink()
    with pytest.raises(ArtifactError, match="outside the store"):
        await store.put_bytes(b"secret")  # would land in `outside`
    assert os.listdir(outside) == []
    assert leftovers(tmp_path / "store") == []


def test_store_from_url(tmp_path: Path) -> None:
    local = store_from_url(f"file://{tmp_path}/a%20b")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "a b"
    plain = store_from_url(str(tmp_path / "c"))
    assert isinstance(plain, LocalStore) and plain.root == tmp_path / "c"
    s3 = store_from_url("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "some/prefix/", "s3://bucket/some/prefix/")
    assert s3.key("a" * 64) == "some/prefix/objects/aa/" + "a" * 62
    assert store_from_url("s3://bucket").key("b" * 64) == "objects/bb/" + "b" * 62
    for bad in ("http://x/y", "s3:///nobucket", "file://otherhost/x", "ftp://h/p"):
        with pytest.raises(ValueError):
            store_from_url(bad)


def _rec(task: str, name: str, at: int, attempt: int = 1) -> ArtifactRecord:
    return ArtifactRecord(sha256=sha(f"{task}{name}{at}".encode()), size=1, task=task,
                          name=name, attempt=attempt, created_at=at)


def test_pick_prefers_parents_then_most_recent() -> None:
    records = [_rec("a", "out.txt", 10), _rec("b", "out.txt", 30), _rec("c", "out.txt", 20),
               _rec("a", "r/x.csv", 5), _rec("b", "r/y.csv", 6), _rec("b", "log.txt", 7)]
    assert [r.task for r in pick_artifacts(records, "out.txt")] == ["b"]  # most recent
    assert [r.task for r in pick_artifacts(records, "out.txt", ["a", "c"])] == ["c"]
    assert pick_artifacts(records, "missing.txt") == []
    assert [r.name for r in pick_artifacts(records, "r/*.csv")] == ["r/x.csv", "r/y.csv"]
    assert [r.name for r in pick_artifacts(records, "*.txt", ["a"])] == ["log.txt", "out.txt"]


def test_worker_settings_choose_the_store(tmp_path: Path) -> None:
    base = ["--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path)]
    settings, _ = parse_settings(base, {})
    default = store_from_settings(settings)
    assert isinstance(default, LocalStore) and default.root == tmp_path / "artifacts"
    settings, _ = parse_settings(
        [*base, "--artifacts", "s3://bkt/runs", "--s3-endpoint-url", "http://127.0.0.1:9"],
        {"DAGBROKER_AWS_REGION": "eu-west-1"},
    )
    s3 = store_from_settings(settings)
    assert isinstance(s3, S3Store) and s3.url == "s3://bkt/runs/"
    assert s3._options == {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}
    settings, _ = parse_settings(base, {"DAGBROKER_ARTIFACTS": (tmp_path / "x").as_uri()})
    assert store_from_settings(settings).url == (tmp_path / "x").as_uri()
    with pytest.raises(SystemExit):
        parse_settings([*base, "--artifacts", "gs://bucket"], {})
