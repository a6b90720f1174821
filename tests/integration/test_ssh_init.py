"""ssh: a node's `init` runs once per host per batch, over the batch's connection, on the
real OpenSSH server of tests/peers (the "remote" host is this machine, so the test reads the
files the init writes there directly).

Every batch here is pushed before the worker starts, so one read takes it whole.
"""

from __future__ import annotations

import os
import signal

from helpers import wait_until
from peers.fixtures import SshServer, sshd  # noqa: F401
from test_ssh_executor import sw  # noqa: F401
from test_worker_support import (  # noqa: F401
    WorkerHarness,
    file_exists,
    process_gone,
    read_text,
    wk_fixture,
)

from broker.wire import Outcome


async def test_init_runs_once_per_host_before_the_batch(
    sw: WorkerHarness, sshd: SshServer,  # noqa: F811
) -> None:
    count = sw.tmp / "count"
    init = 'echo "init $X in $(pwd)" >> {{ count }}; echo hello from init'
    params = {"count": str(count)}
    for i in range(3):  # each task sees the init's line already there
        await sw.push(f"t{i}", "ssh", host="lo", params=params, env={"X": "x-{{ count }}"},
                      init=init, vars={"i": i},
                      command="test -s {{ count }} && echo task {{ i }}")
    accepted = sshd.accepted()
    await sw.start()
    done = {c.node: c for c in await sw.wait_done(3, timeout_s=30)}
    lines = read_text(count).splitlines()
    assert len(lines) == 1, lines  # once for the three tasks on the host
    init_dir = sw.tmp / "remote" / ".dagb-init"
    assert lines[0].startswith(f"init x-{count} in {init_dir}/")  # node env, per-batch dir
    for i in range(3):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, (c.reason, c.tail)
        assert c.tail.index("hello from init") < c.tail.index(f"task {i}")
    assert sshd.accepted() - accepted == 1  # init and tasks: the batch's one connection
    assert list(init_dir.iterdir()) == []  # the init's remote directory is removed
    init_logs = list((sw.tmp / "data" / "logs" / "_init").iterdir())
    assert len(init_logs) == 1 and read_text(init_logs[0]) == "hello from init\n"


async def test_a_failed_init_fails_the_hosts_tasks_unrun(sw: WorkerHarness) -> None:  # noqa: F811
    ran = sw.tmp / "ran"
    for i in range(3):
        await sw.push(f"t{i}", "ssh", host="lo", init=["sh", "-c", "echo broken; exit 3"],
                      command=f"touch {ran}.{i}")
    await sw.start()
    done = await sw.wait_done(3, timeout_s=30)
    for c in done:
        assert (c.outcome, c.reason) == (Outcome.FAILED, "init failed: exit 3"), c.tail
        assert "broken" in c.tail
    assert not [p for p in sw.tmp.iterdir() if p.name.startswith("ran")]  # none ran


async def test_init_timeout_kills_its_process_group(sw: WorkerHarness) -> None:  # noqa: F811
    pidfile = sw.tmp / "init.pid"
    await sw.start(kill_grace_s=0.5)
    for i in range(2):
        await sw.push(f"t{i}", "ssh", host="lo", timeout_s=1.0, batch="same",
                      init=f"trap '' TERM; sleep 120 & echo $! > {pidfile}; wait",
                      command="true")
    for c in await sw.wait_done(2, timeout_s=30):
        assert (c.outcome, c.reason) == (Outcome.FAILED, "init failed: timed out after 1.0s")
    await wait_until(process_gone(int(read_text(pidfile))), 10.0, what="SIGKILL of the init")


async def test_dropped_connection_during_init_is_lost(
    sw: WorkerHarness, sshd: SshServer,  # noqa: F811
) -> None:
    pidfile = sw.tmp / "init.pid"
    ran = sw.tmp / "ran"
    for i in range(3):
        await sw.push(f"t{i}", "ssh", host="lo", command=f"touch {ran}",
                      init=f"sleep 120 & echo $! > {pidfile}; wait")
    await sw.start()
    await wait_until(file_exists(pidfile), 20.0, what="the remote init to start")
    pid = int(read_text(pidfile))
    for session in sshd.session_pids():  # sshd's processes for this connection
        os.kill(session, signal.SIGKILL)
    for c in await sw.wait_done(3, timeout_s=30):
        assert c.outcome is Outcome.LOST, c.reason
        assert c.reason.startswith("ssh: connection to lo lost during init"), c.reason
        assert "may still run" not in c.reason
    await wait_until(process_gone(pid), 10.0, what="the orphaned init to be killed")
    assert not ran.exists()
