"""A worker killed with SIGKILL takes its tasks' whole process groups with it.

Otherwise a task keeps running while the broker's reaper re-queues it elsewhere: the same
work twice. Real `python -m worker` processes, real tasks with grandchildren, `kill -9`.
PID 1 here may never reap orphans, so "gone" means no live (non-zombie) process is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from helpers import wait_until
from test_worker_support import WorkerHarness, pid_alive, wk_fixture  # noqa: F401

from broker.wire import Outcome

DEADLINE_S = 5.0


def live_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes of process group pgid."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry))
    return members


async def spawn_worker(
    wk: WorkerHarness, env: dict[str, str], rid: str, *extra: str
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "--redis-url", wk.url, "--prefix", wk.keys.prefix,
        "--classes", "cpu", "--slots", "4", "--id", rid, "--data-dir", str(wk.tmp / "data"),
        "--heartbeat-interval", "0.2", "--heartbeat-ttl", "5", *extra,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )

    async def registered() -> bool:
        if proc.returncode is not None:
            raise AssertionError(f"the worker exited early ({proc.returncode})")
        return bool(await wk.rds.exists(wk.keys.heartbeat(rid)))

    await wait_until(registered, 15.0, what="the worker process to register")
    return proc


async def read_pids(path: Path, count: int, what: str) -> list[int]:
    """Wait until the task wrote `count` PIDs (one line, then a newline) to path."""

    async def written() -> list[int] | None:
        text = path.read_text() if path.exists() else ""
        pids = [int(p) for p in text.split()] if text.endswith("\n") else []
        return pids if len(pids) >= count else None

    return await wait_until(written, 15.0, what=what)


async def assert_groups_die(pgids: list[int], pids: list[int]) -> None:
    async def all_gone() -> bool:
        return not any(live_members(g) for g in pgids)

    try:
        await wait_until(all_gone, DEADLINE_S, interval_s=0.05, what="the task groups to die")
    except AssertionError:
        left = {g: live_members(g) for g in pgids}
        for g in pgids:  # don't leave them running after a failure
            if left[g]:
                os.killpg(g, signal.SIGKILL)
        raise AssertionError(f"still running after {DEADLINE_S}s: {left}") from None
    assert not [p for p in pids if pid_alive(p)]  # grandchildren included


PY_TASK = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {os.getpgid(0)} {child.pid}\\n")
time.sleep(60)
"""


async def test_sigkilled_worker_leaves_no_task_process(
    wk: WorkerHarness, child_env: dict[str, str]
) -> None:
    rid = "orphans"
    proc = await spawn_worker(wk, child_env, rid)
    sh_out, py_out = wk.tmp / "sh.pids", wk.tmp / "py.pids"
    (wk.tmp / "task.py").write_text(PY_TASK)
    # SIGTERM/HUP/INT ignored (inherited by both sleeps): only a SIGKILL ends them
    await wk.push("sh", command=(
        f"trap '' TERM HUP INT; sleep 60 & g=$!; echo $$ $g > {sh_out}.tmp; "
        f"mv {sh_out}.tmp {sh_out}; sleep 60; wait"
    ))
    await wk.push("py", "python", command=f"{wk.tmp / 'task.py'} {py_out}")
    sh_pid, sh_grandchild = await read_pids(sh_out, 2, "the shell task to start")
    py_pid, py_pgid, py_child = await read_pids(py_out, 3, "the python task to start")
    sh_pgid = os.getpgid(sh_pid)
    assert py_pgid == os.getpgid(py_pid) != sh_pgid  # a process group per task
    assert os.getpgid(sh_grandchild) == sh_pgid and os.getpgid(py_child) == py_pgid
    assert sh_pgid != os.getpgid(proc.pid) != py_pgid  # not the worker's group either
    assert all(pid_alive(p) for p in (sh_pid, sh_grandchild, py_pid, py_child))
    assert await wk.task_state("sh") == "running" and await wk.task_state("py") == "running"

    proc.kill()
    await proc.wait()
    await assert_groups_die([sh_pgid, py_pgid], [sh_pid, sh_grandchild, py_pid, py_child])
    assert await wk.done() == []  # nothing reported: the broker's reaper requeues them


async def test_worker_killed_during_the_kill_grace_still_kills_the_group(
    wk: WorkerHarness, child_env: dict[str, str]
) -> None:
    """The timeout's SIGTERM to the group must not disarm it: the kill must still follow."""
    proc = await spawn_worker(wk, child_env, "grace", "--kill-grace", "60")
    pids, got_term = wk.tmp / "pids", wk.tmp / "got-term"
    await wk.push("stubborn", timeout_s=0.3, command=(
        f"trap 'echo term >> {got_term}' TERM; echo $$ > {pids}; "
        "while :; do sleep 1; done"
    ))
    (pid,) = await read_pids(pids, 1, "the task to start")
    pgid = os.getpgid(pid)

    async def termed() -> bool:
        return got_term.exists()

    await wait_until(termed, 10.0, what="the timeout's SIGTERM")  # now in the 60 s grace
    assert live_members(pgid)
    proc.kill()
    await proc.wait()
    await assert_groups_die([pgid], [pid])


async def test_exact_reasons_with_the_group_leader(wk: WorkerHarness) -> None:
    """The task is still the worker's direct child: exit codes above 128 stay exit codes."""
    await wk.start()
    await wk.push("exit", command="exit 143")
    await wk.push("term", command="kill -TERM $$")
    await wk.push("argv", command=[sys.executable, "-c", "import os; os.kill(os.getpid(), 10)"])
    c_exit, c_term = await wk.completion("exit"), await wk.completion("term")
    c_argv = await wk.completion("argv")
    assert (c_exit.outcome, c_exit.reason, c_exit.exit_code) == (
        Outcome.FAILED, "exit code 143", 143)
    assert (c_term.reason, c_term.exit_code) == ("killed by signal SIGTERM", -15)
    assert (c_argv.reason, c_argv.exit_code) == ("killed by signal SIGUSR1", -10)
