"""Pre- and postconditions on a real worker: files, artifacts, commands, upstream results."""

from __future__ import annotations

from pathlib import Path

from helpers import wait_until
from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.wire import Outcome


def log_of(wk: WorkerHarness, node: str, attempt: int = 1) -> Path:
    return wk.tmp / "data" / "logs" / "r1" / node / f"attempt-{attempt}.log"


async def notes_at_least(wk: WorkerHarness, node: str, n: int) -> None:
    """Until the task's log holds n 'precondition false' notes (it is waiting)."""

    async def enough() -> bool:
        path = log_of(wk, node)
        return path.exists() and path.read_text().count("precondition false") >= n

    await wait_until(enough, 15.0, what=f"{n} precondition note(s) of {node}")


async def test_precondition_waits_for_a_file_then_runs(wk: WorkerHarness) -> None:
    workdir = wk.tmp / "wd"
    workdir.mkdir()
    await wk.start()
    await wk.push(
        "load", command="cat data.csv", workdir=str(workdir),
        pre=[{"file": "data.csv"}], pre_retries=30, pre_backoff_s=0.05,
    )
    await notes_at_least(wk, "load", 1)
    assert await wk.task_state("load") == "running"  # it holds its slot while it waits
    (workdir / "data.csv").write_text("a,b\n1,2\n")  # created after the task started waiting
    c = await wk.completion("load")
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    assert "1,2" in c.tail and "precondition false: file data.csv exists" in c.tail


async def test_precondition_gives_up_and_the_lease_is_renewed(wk: WorkerHarness) -> None:
    await wk.start()  # heartbeat every 0.5 s
    await wk.push(
        "load", command="echo never", workdir=str(wk.tmp),
        pre=[{"file": "data.csv"}], pre_retries=3, pre_backoff_s=0.5,
    )
    await notes_at_least(wk, "load", 2)  # 1.5 s of waiting behind it
    pending = await wk.rds.xpending_range(wk.keys.queue("cpu"), "workers", "-", "+", 10)
    assert len(pending) == 1 and pending[0]["time_since_delivered"] < 1200
    c = await wk.completion("load")
    assert c.outcome is Outcome.FAILED
    assert c.reason == "precondition failed: file data.csv exists (after 4 checks)"
    assert c.exit_code is None and "never" not in c.tail
    assert c.finished_at_ms - c.started_at_ms >= 3500  # 0.5 + 1 + 2 s of backoff


async def test_postcondition_fails_a_successful_task(wk: WorkerHarness) -> None:
    out = wk.tmp / "out.txt"
    await wk.start()
    await wk.push(
        "make", command="echo no > {{ out }}; echo '{\"n\": 1}' > $DAGB_RESULT",
        params={"out": str(out)}, post=[{"file": "{{ out }}"}, {"command": "grep -q ok {{ out }}"}],
    )
    await wk.push("described", command="true", workdir=str(wk.tmp),
                  post=[{"file": "missing.txt", "description": "the report exists"}])
    await wk.push("fine", command="echo ok > fine.txt", workdir=str(wk.tmp),
                  post=[{"file": "fine.txt"}, {"command": ["test", "-s", "fine.txt"]}])
    c = await wk.completion("make")
    assert c.outcome is Outcome.FAILED and c.result is None
    assert c.reason == f"postcondition failed: command `grep -q ok {out}` exits 0, exit code 1"
    assert c.exit_code == 0 and "postcondition failed" in c.tail
    d = await wk.completion("described")
    assert d.outcome is Outcome.FAILED and d.reason == "postcondition failed: the report exists"
    f = await wk.completion("fine")
    assert f.outcome is Outcome.SUCCEEDED, f.reason


async def test_result_and_artifact_conditions(wk: WorkerHarness) -> None:
    await wk.set_result("prep", {"stats": {"n": 12}})
    await wk.set_result("sim[0]", 1)
    await wk.set_result("sim[1]", 2)
    await wk.set_result("ens[3].a", {"x": "yes"})
    await wk.rds.hset(wk.keys.artifacts("r1"), "prep/mesh.vtk", "{}")
    await wk.start()
    await wk.push("ok", command="true", parents=["prep", "sim[0]", "sim[1]"], pre=[
        {"result": "prep.stats.n", "op": ">=", "value": 10},
        {"result": "prep", "op": "!=", "value": None},
        {"result": "sim", "op": "==", "value": [1, 2]},
        {"artifact": "mesh.vtk"}, {"artifact": "*.vtk"},
    ])
    await wk.push("ens[3].b", command="true", parents=["ens[3].a"],
                  pre=[{"result": "a.x", "value": "yes"}])
    await wk.push("too_small", command="true", parents=["prep"], pre_retries=0,
                  pre=[{"result": "prep.stats.n", "op": ">", "value": 20}])
    await wk.push("no_key", command="true", parents=["prep"], pre_retries=0,
                  pre=[{"result": "prep.stats.m", "op": "==", "value": 1}])
    await wk.push("no_artifact", command="true", pre_retries=1, pre_backoff_s=0.01,
                  pre=[{"artifact": "missing.bin"}])
    for node in ("ok", "ens[3].b"):
        c = await wk.completion(node)
        assert c.outcome is Outcome.SUCCEEDED, (node, c.reason)
    expected = {
        "too_small": "precondition failed: result prep.stats.n > 20, got 12 (after 1 check)",
        "no_key": "precondition failed: result prep.stats.m == 1, no such upstream value "
                  "(after 1 check)",
        "no_artifact": "precondition failed: artifact missing.bin exists (after 2 checks)",
    }
    for node, reason in expected.items():
        c = await wk.completion(node)
        assert (c.outcome, c.reason) == (Outcome.FAILED, reason)


async def test_a_cancel_ends_the_wait(wk: WorkerHarness) -> None:
    settings = await wk.start()
    await wk.push("wait", command="true", workdir=str(wk.tmp), pre=[{"file": "never"}],
                  pre_retries=100, pre_backoff_s=0.2)
    await notes_at_least(wk, "wait", 1)
    await wk.rds.xadd(wk.keys.control(settings.runner_id),
                      {"op": "cancel", "run": "r1", "node": "wait"})
    c = await wk.completion("wait", timeout_s=5)
    assert c.outcome is Outcome.CANCELLED
