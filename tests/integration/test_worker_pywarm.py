"""Warm interpreters: a batch of python callables runs in a few interpreters that import once.

Every batch here is pushed before the worker starts, so one read takes it whole (the harness
gives every task the same batch key).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from helpers import wait_until
from test_worker_support import (  # noqa: F401
    WorkerHarness,
    file_exists,
    process_gone,
    read_text,
    wk_fixture,
)

from broker.wire import Outcome
from worker.config import WorkerSettings


def room_for(n: int) -> dict[str, Any]:
    """Worker settings that read n one-core tasks at once (slots, and cores where the worker
    accounts for them), so they arrive as one batch."""
    if "cores" in WorkerSettings.__struct_fields__:
        return {"slots": n, "cores": float(n)}
    return {"slots": n}

MODULE = '''
import os, subprocess, sys, time

IMPORTS = 0
IMPORTS += 1  # module state: stays 1 while the interpreter is warm

def who(n):
    print("task", n, "says hi")
    print("task", n, "on stderr", file=sys.stderr)
    return {"n": n, "pid": os.getpid(), "node": os.environ["DAGB_NODE"],
            "x": os.environ.get("X"), "imports": IMPORTS}

def boom(n):
    print("boom", n, "before")
    raise ValueError(f"bad {n}")

def hang(pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)

def die(code):
    print("about to die", flush=True)
    os._exit(code)

def leave_behind(pidfile):
    p = subprocess.Popen(["sleep", "60"])
    with open(pidfile, "w") as f:
        f.write(str(p.pid))
    return p.pid

def bye(code):
    sys.exit(code)

def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

def wait_gone(pidfile):
    while not os.path.exists(pidfile) or not open(pidfile).read():
        time.sleep(0.05)
    pid = int(open(pidfile).read())
    while _alive(pid):
        time.sleep(0.05)
    return pid
'''


async def _setup(wk: WorkerHarness) -> dict[str, str]:
    (wk.tmp / "wmod.py").write_text(MODULE)
    return {"workdir": str(wk.tmp)}


async def test_a_batch_runs_in_fewer_interpreters_than_tasks(wk: WorkerHarness) -> None:
    common = await _setup(wk)
    n = 8
    for i in range(n):
        await wk.push(f"t{i}", "python", callable="wmod:who", kwargs={"n": i}, **common)
    await wk.push("err", "python", callable="wmod:boom", kwargs={"n": 99}, **common)
    await wk.push("exit4", "python", callable="wmod:bye", kwargs={"code": 4}, **common)
    await wk.start(**room_for(n + 2))
    done = {c.node: c for c in await wk.wait_done(n + 2)}
    pids = set()
    for i in range(n):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, c.tail
        assert (c.result["n"], c.result["node"]) == (i, f"t{i}")  # per-task env, per-task result
        assert f"task {i} says hi" in c.tail and f"task {i} on stderr" in c.tail
        others = [j for j in range(n) if j != i]
        assert not any(f"task {j} says" in c.tail for j in others), c.tail  # logs not mixed
        assert "boom" not in c.tail
        assert c.result["imports"] == 1
        pids.add(c.result["pid"])
    assert 1 <= len(pids) < n, pids  # interpreters were reused
    assert os.getpid() not in pids
    err = done["err"]
    assert (err.outcome, err.reason, err.exit_code) == (Outcome.FAILED, "ValueError: bad 99", 1)
    assert "boom 99 before" in err.tail and "Traceback" in err.tail
    assert not any(f"task {i}" in err.tail for i in range(n))
    bye = done["exit4"]
    assert (bye.outcome, bye.exit_code, bye.reason) == (Outcome.FAILED, 4, "exit code 4")


async def test_interpreters_are_shared_only_within_one_environment(wk: WorkerHarness) -> None:
    common = await _setup(wk)
    xs = [1, 2, 1, 2, 1, 2]
    for i, x in enumerate(xs):
        await wk.push(f"t{i}", "python", callable="wmod:who", kwargs={"n": i},
                      env={"X": "{{ x }}"}, vars={"x": x}, **common)
    await wk.start(**room_for(len(xs)))
    done = {c.node: c for c in await wk.wait_done(len(xs))}
    pids_of: dict[str, set[int]] = {"1": set(), "2": set()}
    for i, x in enumerate(xs):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, c.tail
        assert c.result["x"] == str(x)
        pids_of[str(x)].add(c.result["pid"])
    assert not pids_of["1"] & pids_of["2"]


async def test_a_timeout_or_cancel_kills_one_interpreter_and_spares_the_others(
    wk: WorkerHarness,
) -> None:
    common = await _setup(wk)
    cancel_pid, timeout_pid = wk.tmp / "cancel.pid", wk.tmp / "timeout.pid"
    await wk.push("hang", "python", callable="wmod:hang", kwargs={"pidfile": str(cancel_pid)},
                  **common)
    await wk.push("slow", "python", callable="wmod:hang", kwargs={"pidfile": str(timeout_pid)},
                  timeout_s=1.0, **common)
    for i in range(4):
        await wk.push(f"t{i}", "python", callable="wmod:who", kwargs={"n": i}, **common)
    settings = await wk.start(**room_for(6))
    await wait_until(file_exists(cancel_pid), 10.0, what="the hanging task to start")
    await wk.rds.xadd(wk.keys.control(settings.runner_id),
                      {"op": "cancel", "run": "r1", "node": "hang"})
    done = {c.node: c for c in await wk.wait_done(6, timeout_s=20.0)}
    assert (done["hang"].outcome, done["hang"].reason) == (Outcome.CANCELLED, "cancelled")
    assert (done["slow"].outcome, done["slow"].reason) == (Outcome.FAILED, "timeout after 1.0s")
    killed = {int(read_text(cancel_pid)), int(read_text(timeout_pid))}
    for pid in killed:
        await wait_until(process_gone(pid), 10.0, what=f"interpreter {pid} killed")
    for i in range(4):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, c.tail
        assert c.result["pid"] not in killed


async def test_a_task_that_ends_its_interpreter_fails_alone(wk: WorkerHarness) -> None:
    common = await _setup(wk)
    await wk.push("die", "python", callable="wmod:die", kwargs={"code": 3}, **common)
    for i in range(5):
        await wk.push(f"t{i}", "python", callable="wmod:who", kwargs={"n": i}, **common)
    await wk.start(**room_for(6))
    done = {c.node: c for c in await wk.wait_done(6)}
    die = done["die"]
    assert (die.outcome, die.exit_code, die.reason) == (Outcome.FAILED, 3, "exit code 3")
    assert "about to die" in die.tail
    for i in range(5):
        assert done[f"t{i}"].outcome is Outcome.SUCCEEDED, done[f"t{i}"].tail


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two interpreters at once")
async def test_processes_a_task_leaves_behind_die_when_it_ends(wk: WorkerHarness) -> None:
    common = await _setup(wk)
    pidfile = wk.tmp / "child.pid"
    await wk.push("bg", "python", callable="wmod:leave_behind", kwargs={"pidfile": str(pidfile)},
                  **common)
    # two lanes: `bg` then `after` in one, `watch` in the other. Both waiters end only once
    # the left-behind sleep is gone, which has to happen before the batch ends (the lanes
    # and their interpreters end only then): so `bg`'s interpreter was retired right after it
    for node in ("watch", "after"):
        await wk.push(node, "python", callable="wmod:wait_gone", kwargs={"pidfile": str(pidfile)},
                      **common)
    await wk.start(**room_for(3))
    done = {c.node: c for c in await wk.wait_done(3)}
    assert done["bg"].outcome is Outcome.SUCCEEDED, done["bg"].tail
    for node in ("watch", "after"):
        assert done[node].outcome is Outcome.SUCCEEDED, done[node].tail
        assert done[node].result == done["bg"].result
