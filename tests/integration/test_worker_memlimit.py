"""resources.memory enforced for local tasks with real memory cgroups (executors/memlimit.py).

Real worker, real processes, real cgroups: a task past its limit is OOM-killed by the kernel
and reported out of memory; the task cgroups are gone afterwards. Where this host cannot
create a memory cgroup, these tests fail when CI is set and skip otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_worker_support import WorkerHarness, read_text, wk_fixture  # noqa: F401

from broker.wire import Outcome
from worker.executors.memlimit import (
    CgroupBase,
    cgroup_base,
    cgroup_name,
    enforcement_off_reason,
)
from worker.executors.pywarm import lane_count

OOM_50 = "out of memory: exceeded its memory limit of 50 MiB"


def alloc(mb: int) -> list[str]:
    """A command touching `mb` MiB (bytes multiplied are written, so really resident)."""
    return ["python3", "-c", f"b = b'x' * ({mb} << 20); print('allocated', len(b) >> 20)"]


@pytest.fixture(name="base")
async def base_fixture() -> CgroupBase:
    base = await cgroup_base()
    if base is None:
        why = f"memory cgroups cannot be created here: {enforcement_off_reason()}"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return base


def leftovers(base: CgroupBase, runner_id: str) -> list[str]:
    """This runner's task cgroups still present under the worker's memory cgroup."""
    prefix = cgroup_name(runner_id, "", "", 0).removesuffix("---0")
    return sorted(p.name for p in Path(base.path).iterdir() if p.name.startswith(prefix))


async def test_a_shell_task_past_its_memory_limit_fails_out_of_memory(
    wk: WorkerHarness, base: CgroupBase,
) -> None:
    settings = await wk.start()
    await wk.push("hog", command=alloc(200), memory_mb=50)
    await wk.push("small", command=alloc(20))  # no limit declared: runs as before
    await wk.push("fits", command=alloc(20), memory_mb=200)
    await wk.push("sig", command="kill -9 $$", memory_mb=50)  # SIGKILL, not the OOM killer
    hog = await wk.completion("hog")
    assert (hog.outcome, hog.reason) == (Outcome.FAILED, OOM_50), hog.tail
    assert hog.exit_code in (137, -9)
    assert OOM_50 in hog.tail  # the worker's note in the task's log
    for node in ("small", "fits"):
        c = await wk.completion(node)
        assert c.outcome is Outcome.SUCCEEDED, (c.reason, c.tail)
        assert "allocated 20" in c.tail
    sig = await wk.completion("sig")
    assert (sig.outcome, sig.reason) == (Outcome.FAILED, "killed by signal SIGKILL")
    assert leftovers(base, settings.runner_id) == []


async def test_only_a_task_that_declares_memory_runs_in_a_cgroup(
    wk: WorkerHarness, base: CgroupBase,
) -> None:
    out = wk.tmp / "seen"
    await wk.start()
    await wk.push("who", command=["sh", "-c", f"cat /proc/self/cgroup > {out}"], memory_mb=64)
    await wk.push("free", command=["sh", "-c", f"cat /proc/self/cgroup > {out}.free"])
    c, free = await wk.completion("who"), await wk.completion("free")
    assert c.outcome is Outcome.SUCCEEDED and free.outcome is Outcome.SUCCEEDED
    name = cgroup_name(c.runner, "r1", "who", 1)
    assert any(line.endswith("/" + name) for line in read_text(out).splitlines())
    assert "dagb-" not in read_text(wk.tmp / "seen.free")


MODULE = '''
import os

def hog(mb, pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    b = b"x" * (mb << 20)
    return len(b)

def ok(wait_for):
    if wait_for:
        while not os.path.exists(wait_for):
            os.sched_yield()
    open(os.environ["DAGB_NODE"] + ".ran", "w").close()
    return {"pid": os.getpid(), "n": len(b"x" * (10 << 20)) >> 20}
'''


async def test_a_warm_python_task_past_the_limit_fails_and_the_batch_goes_on(
    wk: WorkerHarness, base: CgroupBase,
) -> None:
    (wk.tmp / "mmod.py").write_text(MODULE)
    common = {"workdir": str(wk.tmp), "memory_mb": 100}
    pidfile = wk.tmp / "hog.pid"
    # With two lanes or more: ok1 waits until ok2 ran, so ok2 runs in the hog's lane, after
    # its interpreter was OOM-killed (a fresh one). With one lane, in order.
    wait_for = str(wk.tmp / "ok2.ran") if lane_count(3) >= 2 else ""
    await wk.push("hog", "python", callable="mmod:hog",
                  kwargs={"mb": 400, "pidfile": str(pidfile)}, **common)
    await wk.push("ok1", "python", callable="mmod:ok", kwargs={"wait_for": wait_for}, **common)
    await wk.push("ok2", "python", callable="mmod:ok", kwargs={"wait_for": ""}, **common)
    settings = await wk.start(slots=3, cores=3.0)
    done = {c.node: c for c in await wk.wait_done(3)}
    hog = done["hog"]
    assert (hog.outcome, hog.reason) == (
        Outcome.FAILED, "out of memory: exceeded its memory limit of 100 MiB"), hog.tail
    assert hog.exit_code in (137, -9)
    hog_pid = int(read_text(pidfile))
    for node in ("ok1", "ok2"):
        c = done[node]
        assert c.outcome is Outcome.SUCCEEDED, (c.reason, c.tail)
        assert c.result["n"] == 10 and c.result["pid"] != hog_pid
    assert leftovers(base, settings.runner_id) == []


async def test_argv_is_not_interpreted_and_a_missing_program_cannot_start(
    wk: WorkerHarness, base: CgroupBase,
) -> None:
    marker = wk.tmp / "injected"
    odd = f"$(touch {marker}) `touch {marker}` ; \"$0\" '$@' *"
    settings = await wk.start()
    await wk.push("argv", command=["printf", "[%s]", odd], memory_mb=64)
    await wk.push("prog", command=["/no/such/program"], memory_mb=64)
    argv, prog = await wk.completion("argv"), await wk.completion("prog")
    assert argv.outcome is Outcome.SUCCEEDED, argv.reason
    assert argv.tail == f"[{odd}]"
    assert not marker.exists()
    assert prog.outcome is Outcome.FAILED and prog.reason.startswith("cannot start"), prog.reason
    assert leftovers(base, settings.runner_id) == []


def test_cgroup_names_are_one_safe_bounded_dir_name() -> None:
    assert cgroup_name("w1", "r1", "a.3", 2) == "dagb-w1-r1-a.3-2"
    assert cgroup_name("w1", "r/../x", "n o", 1) == "dagb-w1-r_.._x-n_o-1"
    long_a, long_b = cgroup_name("w", "r" * 500, "a", 1), cgroup_name("w", "r" * 500, "b", 1)
    assert len(long_a) <= 200 and long_a != long_b and "/" not in long_a
