"""Staging inputs and uploading outputs: the functions on a real directory and Redis, then
through a real worker (in this event loop) running real shell tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis.asyncio as aredis
from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.artifacts import ArtifactError, LocalStore, list_artifacts
from broker.keys import Keys
from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.artifacts import stage_inputs, upload_outputs


def message(node: str, *, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
            parents: tuple[str, ...] = (), attempt: int = 1) -> TaskMessage:
    spec = TaskSpec(node=node, executor="shell", inputs=list(inputs), outputs=list(outputs))
    return TaskMessage(msg_id="1-0", stream="q", run="r1", node=node, attempt=attempt, tpl=node,
                       batch="", spec=spec, parents=list(parents))


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


async def test_upload_then_stage(rds: aredis.Redis, keys: Keys, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    work = tree(tmp_path / "a", {"out.txt": "A1", "res/x.csv": "1,2", "res/y.csv": "3,4",
                                 "res/skip.log": "no"})
    msg = message("a", outputs=("out.txt", "res/*.csv"), attempt=2)
    records = await upload_outputs(msg, work, store, rds, keys)
    assert [(r.name, r.size, r.attempt) for r in records] == [
        ("out.txt", 2, 2), ("res/x.csv", 3, 2), ("res/y.csv", 3, 2)]
    index = await rds.hgetall(keys.artifacts("r1"))
    assert sorted(index) == ["a/out.txt", "a/res/x.csv", "a/res/y.csv"]
    assert json.loads(index["a/out.txt"])["sha256"] == records[0].sha256
    assert [r.name for r in await list_artifacts(rds, keys, "r1")] == sorted(
        ["out.txt", "res/x.csv", "res/y.csv"])
    # another task of the run also writes out.txt; the child's parent wins
    await upload_outputs(message("z", outputs=("out.txt",)),
                         tree(tmp_path / "z", {"out.txt": "Z"}), store, rds, keys)
    child = tmp_path / "child"
    child.mkdir()
    staged = await stage_inputs(message("b", inputs=("out.txt", "res/*.csv"), parents=("a",)),
                                child, store, rds, keys)
    assert [(r.task, r.name) for r in staged] == [("a", "out.txt"), ("a", "res/x.csv"),
                                                  ("a", "res/y.csv")]
    assert (child / "out.txt").read_text() == "A1"
    assert (child / "res" / "y.csv").read_text() == "3,4"
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    await stage_inputs(message("c", inputs=("out.txt",)), orphan, store, rds, keys)
    assert (orphan / "out.txt").read_text() == "Z"  # no parent made it: the most recent


async def test_missing_input_and_output_are_named(
    rds: aredis.Redis, keys: Keys, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    work = tree(tmp_path / "w", {"out.txt": "x"})
    with pytest.raises(ArtifactError, match="'model.bin' not found"):
        await stage_inputs(message("b", inputs=("model.bin",), parents=("a",)), work, store,
                           rds, keys)
    with pytest.raises(ArtifactError, match=r"declared output 'results/\*.csv' matched no"):
        await upload_outputs(message("a", outputs=("out.txt", "results/*.csv")), work, store,
                             rds, keys)
    assert await rds.exists(keys.artifacts("r1")) == 0  # nothing indexed
    os.mkdir(work / "adir")
    with pytest.raises(ArtifactError, match="is a directory"):
        await upload_outputs(message("a", outputs=("adir",)), work, store, rds, keys)


@pytest.mark.parametrize("pattern", ["../secret.txt", "/etc/hostname", "a/../../secret.txt",
                                     "./out.txt", "a//b"])
async def test_names_escaping_the_workdir_are_refused(
    rds: aredis.Redis, keys: Keys, tmp_path: Path, pattern: str
) -> None:
    store = LocalStore(tmp_path / "store")
    tree(tmp_path, {"secret.txt": "s", "w/out.txt": "o"})
    with pytest.raises(ArtifactError, match="relative path"):
        await upload_outputs(message("a", outputs=(pattern,)), tmp_path / "w", store, rds, keys)
    with pytest.raises(ArtifactError, match="relative path"):
        await stage_inputs(message("b", inputs=(pattern,)), tmp_path / "w", store, rds, keys)
    assert [k async for k in store.iter_keys()] == []


async def test_symlinks_out_of_the_workdir_are_refused(
    rds: aredis.Redis, keys: Keys, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    work = tree(tmp_path / "w", {"real.txt": "inside"})
    tree(tmp_path, {"secret.txt": "outside", "elsewhere/x.txt": "outside"})
    (work / "inner.txt").symlink_to(work / "real.txt")  # stays inside: allowed
    (work / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (work / "dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    ok = await upload_outputs(message("a", outputs=("inner.txt",)), work, store, rds, keys)
    assert [r.name for r in ok] == ["inner.txt"]
    for pattern in ("leak.txt", "*.txt", "dir/x.txt", "dir/*"):
        with pytest.raises(ArtifactError, match="outside the workdir"):
            await upload_outputs(message("a", outputs=(pattern,)), work, store, rds, keys)
    assert [k async for k in store.iter_keys()] == [ok[0].sha256]
    # staging: an input whose directory is a symlink out of the workdir is not written there
    await upload_outputs(message("p", outputs=("x.txt",)), tree(tmp_path / "p", {"x.txt": "X"}),
                         store, rds, keys)
    await rds.hset(keys.artifacts("r1"), "p/dir/x.txt",
                   (await rds.hget(keys.artifacts("r1"), "p/x.txt")).replace(
                       '"name":"x.txt"', '"name":"dir/x.txt"'))
    with pytest.raises(ArtifactError, match="cannot be placed inside the workdir"):
        await stage_inputs(message("b", inputs=("dir/x.txt",), parents=("p",)), work, store,
                           rds, keys)
    assert (tmp_path / "elsewhere" / "x.txt").read_text() == "outside"


# -- through a worker ------------------------------------------------------------------------
async def test_worker_uploads_outputs_and_stages_inputs(wk: WorkerHarness) -> None:
    await wk.start()
    await wk.push("make", command="mkdir -p res && echo made > out.txt && echo 1 > res/a.csv",
                  outputs=["out.txt", "res/*.csv"])
    made = await wk.completion("make")
    assert made.outcome is Outcome.SUCCEEDED, made.reason
    index = await wk.rds.hgetall(wk.keys.artifacts("r1"))
    assert sorted(index) == ["make/out.txt", "make/res/a.csv"]
    store = LocalStore(wk.tmp / "data" / "artifacts")  # the worker's default store
    assert await store.exists(json.loads(index["make/out.txt"])["sha256"])
    await wk.set_result("make", None)
    await wk.push("use", command='test "$(cat res/a.csv)" = 1 && '
                                 'printf \'"%s"\' "$(cat out.txt)" > "$DAGB_RESULT"',
                  inputs=["out.txt", "res/a.csv"], parents=["make"])
    used = await wk.completion("use")
    assert used.outcome is Outcome.SUCCEEDED, used.reason
    assert used.result == "made"
    await wk.push("needs", command="true", inputs=["absent.dat"], parents=["make"])
    await wk.push("forgets", command="echo hi > other.txt", outputs=["promised.txt"])
    needs, forgets = await wk.completion("needs"), await wk.completion("forgets")
    assert needs.outcome is Outcome.FAILED and "'absent.dat' not found" in needs.reason
    assert forgets.outcome is Outcome.FAILED
    assert "declared output 'promised.txt' matched no file" in forgets.reason
    assert not await wk.rds.hexists(wk.keys.artifacts("r1"), "forgets/other.txt")
    assert os.listdir(wk.tmp / "data" / "work") == []  # per-attempt workdirs are removed
