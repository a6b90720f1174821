"""`init` runs once per batch before its tasks; `--batch-max` caps a batch.

Every batch here is pushed before the worker starts, so one read takes it whole (the harness
gives every task the same batch key).
"""

from __future__ import annotations

from test_worker_pywarm import MODULE, room_for
from test_worker_support import WorkerHarness, read_text, wk_fixture  # noqa: F401

from broker.wire import Outcome


async def test_init_runs_once_before_a_shell_batch(wk: WorkerHarness) -> None:
    count = wk.tmp / "count"
    init = 'echo "init ran with X=$X" >> {{ count }}; echo hello from init'
    params = {"count": str(count)}
    for i in range(4):  # each task sees the init's file already there
        await wk.push(f"t{i}", command="test -s {{ count }} && echo task {{ i }}", init=init,
                      env={"X": "x-{{ count }}"}, params=params, vars={"i": i})
    await wk.push("plain", command="echo plain task")
    await wk.start(**room_for(5))
    done = {c.node: c for c in await wk.wait_done(5)}
    assert read_text(count) == f"init ran with X=x-{count}\n"  # once, with the node's env
    for i in range(4):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, c.tail
        assert "hello from init" in c.tail and f"task {i}" in c.tail
        assert c.tail.index("hello from init") < c.tail.index(f"task {i}")
    assert done["plain"].outcome is Outcome.SUCCEEDED
    assert done["plain"].tail == "plain task\n"
    init_logs = list((wk.tmp / "data" / "logs" / "_init").iterdir())
    assert len(init_logs) == 1 and "hello from init" in read_text(init_logs[0])


async def test_init_runs_once_before_a_python_batch(wk: WorkerHarness) -> None:
    (wk.tmp / "wmod.py").write_text(MODULE)
    count = wk.tmp / "count"
    for i in range(3):
        await wk.push(f"t{i}", "python", callable="wmod:who", kwargs={"n": i},
                      init=["sh", "-c", f"echo once >> {count}"], workdir=str(wk.tmp))
    await wk.start(**room_for(3))
    done = await wk.wait_done(3)
    assert all(c.outcome is Outcome.SUCCEEDED for c in done), [c.tail for c in done]
    assert read_text(count) == "once\n"


async def test_a_failed_init_fails_the_whole_batch_unrun(wk: WorkerHarness) -> None:
    ran = wk.tmp / "ran"
    for i in range(3):
        await wk.push(f"t{i}", command=f"touch {ran}", init="echo broken setup; exit 3")
    await wk.start(**room_for(3))
    for c in await wk.wait_done(3):
        assert (c.outcome, c.reason) == (Outcome.FAILED, "init failed: exit 3")
        assert "broken setup" in c.tail
    assert not ran.exists()


async def test_init_timeout_and_unrenderable_init(wk: WorkerHarness) -> None:
    await wk.push("slow", command="true", init="sleep 30", timeout_s=0.5)
    await wk.push("matrix", command="true", init="echo {{ i }}", vars={"i": 1})
    await wk.start(**room_for(2))
    slow, matrix = await wk.completion("slow"), await wk.completion("matrix")
    assert (slow.outcome, slow.reason) == (Outcome.FAILED, "init failed: timed out after 0.5s")
    assert (matrix.outcome, matrix.reason) == (
        Outcome.FAILED, "init failed: unknown placeholder {{ i }}"
    )


async def test_batch_max_1_makes_one_executor_call_per_task(wk: WorkerHarness) -> None:
    (wk.tmp / "wmod.py").write_text(MODULE)
    count = wk.tmp / "count"
    n = 4
    for i in range(n):
        await wk.push(f"s{i}", command="true", init=f"echo batch >> {count}")
        await wk.push(f"p{i}", "python", callable="wmod:who", kwargs={"n": i},
                      workdir=str(wk.tmp))
    await wk.start(batch_max=1, **room_for(2 * n))
    done = {c.node: c for c in await wk.wait_done(2 * n)}
    assert all(c.outcome is Outcome.SUCCEEDED for c in done.values())
    assert read_text(count) == "batch\n" * n  # init ran once per batch: n batches
    assert len({done[f"p{i}"].result["pid"] for i in range(n)}) == n  # an interpreter each
