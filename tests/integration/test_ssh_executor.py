"""The ssh executor against a real OpenSSH server on loopback (tests/peers/start-sshd.sh).

The "remote" host is this machine, reached through sshd as root with the fixture's keys;
so a test can look at remote files and processes directly. Connections are counted from
sshd's own log ("Accepted publickey" per login).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import wait_until
from peers.fixtures import SshServer, sshd  # noqa: F401
from test_worker_support import (  # noqa: F401
    WorkerHarness,
    file_exists,
    process_gone,
    read_text,
    wk_fixture,
)

from broker.wire import Outcome
from worker.executors import ssh
from worker.executors.ssh_inventory import load_inventory


def write_inventory(path: Path, server: SshServer, remote: Path) -> Path:
    """A TOML inventory: 'lo' is the test sshd, 'down' a port nothing listens on."""
    lo = server.inventory_entry(workdir=str(remote))
    lines = ["[lo]"] + [f"{k} = {json.dumps(v)}" for k, v in lo.items()]
    lines += ["[down]", 'host = "127.0.0.1"', "port = 1", "connect_timeout_s = 5"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def sw(wk: WorkerHarness, sshd: SshServer) -> AsyncIterator[WorkerHarness]:  # noqa: F811
    """A harness whose workers' ssh executor has the test inventory."""
    before = ssh.EXECUTOR.inventory
    inventory = write_inventory(wk.tmp / "hosts.toml", sshd, wk.tmp / "remote")
    wk.defaults["ssh_inventory"] = str(inventory)  # a worker configures its executors itself
    ssh.configure_ssh(wk.settings())
    yield wk
    ssh.EXECUTOR.configure(before)


def remote_dirs(wk: WorkerHarness) -> list[Path]:
    base = wk.tmp / "remote" / "r1"
    return list(base.iterdir()) if base.exists() else []


async def test_a_batch_shares_one_connection(sw: WorkerHarness, sshd: SshServer) -> None:  # noqa: F811
    marker = sw.tmp / "pwned"
    value = f"x'\n$(touch {marker}) `touch {marker}`; \"$HOME && touch {marker}"
    out = sw.tmp / "out.txt"
    await sw.set_result("parent", {"p": 1})
    params = {"v": value, "out": str(out), "name": "world"}
    await sw.push("ok", "ssh", host="lo", params=params, parents=["parent"],
                  env={"GREETING": "hi {{ name }}"},
                  command='echo "$GREETING $DAGB_NODE $DAGB_ATTEMPT"; '
                          'printf %s {{ v }} > {{ out }}; cat "$DAGB_INPUTS"; '
                          'echo \'{"n": 1}\' > "$DAGB_RESULT"')
    await sw.push("bad", "ssh", host="lo", command="echo oops >&2; exit 3")
    await sw.push("argv", "ssh", host="lo", params=params, command=["printf", "[%s]", "{{ v }}"])
    accepted = sshd.accepted()
    await sw.start()
    await sw.wait_done(3, timeout_s=30)
    got = {c.node: c for c in await sw.done()}
    assert sshd.accepted() - accepted == 1  # one connection for the batch's three tasks
    ok, bad, argv = got["ok"], got["bad"], got["argv"]
    assert ok.outcome is Outcome.SUCCEEDED, ok.reason
    assert ok.result == {"n": 1} and ok.exit_code == 0
    assert "hi world ok 1" in ok.tail and '{"parent":{"p":1}}' in ok.tail
    assert read_text(out) == value and not marker.exists()
    assert argv.outcome is Outcome.SUCCEEDED and argv.tail == f"[{value}]"
    assert (bad.outcome, bad.reason, bad.exit_code) == (Outcome.FAILED, "exit code 3", 3)
    assert "oops" in bad.tail
    assert "hi world ok 1" in read_text(sw.tmp / "data" / "logs" / "r1" / "ok" / "attempt-1.log")
    assert remote_dirs(sw) == []  # each attempt's remote directory is removed


async def test_inputs_up_and_outputs_down_by_sftp(sw: WorkerHarness) -> None:
    local = sw.tmp / "local"
    (local / "data").mkdir(parents=True)
    (local / "in.txt").write_text("input\n")
    (local / "data" / "x.csv").write_text("1,2\n")
    command = ("cat in.txt data/x.csv > out.txt; mkdir -p res; echo a > res/a.txt; "
               "echo b > res/b.txt; pwd")
    await sw.push("io", "ssh", host="lo", command=command, workdir=str(local),
                  inputs=["in.txt", "data"], outputs=["out.txt", "res/*.txt"])
    await sw.push("missing", "ssh", host="lo", command="true", workdir=str(local),
                  outputs=["never.txt"])
    await sw.start()
    io, missing = await sw.completion("io"), await sw.completion("missing")
    assert io.outcome is Outcome.SUCCEEDED, io.reason
    assert read_text(local / "out.txt") == "input\n1,2\n"
    assert [read_text(local / "res" / f) for f in ("a.txt", "b.txt")] == ["a\n", "b\n"]
    assert io.tail.strip().startswith(str(sw.tmp / "remote" / "r1" / "io.1"))  # the remote cwd
    assert (missing.outcome, missing.reason) == (
        Outcome.FAILED, "output 'never.txt' was not produced")


async def test_cancel_kills_the_remote_process_group(sw: WorkerHarness) -> None:
    pidfile = sw.tmp / "sleep.pid"
    settings = await sw.start()
    await sw.push("long", "ssh", host="lo", command=f"sleep 120 & echo $! > {pidfile}; wait")
    await wait_until(file_exists(pidfile), 20.0, what="the remote task to start")
    pid = int(read_text(pidfile))
    await sw.rds.xadd(sw.keys.control(settings.runner_id),
                      {"op": "cancel", "run": "r1", "node": "long"})
    c = await sw.completion("long", timeout_s=20)
    assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled")
    await wait_until(process_gone(pid), 10.0, what="the remote sleep to be killed")


async def test_output_streams_live_to_redis(sw: WorkerHarness) -> None:
    gate = sw.tmp / "gate"
    await sw.start()
    await sw.push("chatty", "ssh", host="lo",
                  command=f"echo first; echo second >&2; while [ ! -e {gate} ]; do sleep 0.1; done")

    async def shipped() -> list[str] | None:
        lines = [f["line"] for _, f in await sw.rds.xrange(sw.keys.log("r1", "chatty"))]
        return lines if {"first", "second"} <= set(lines) else None

    lines = await wait_until(shipped, 20.0, what="the remote output in dagb:log")
    assert await sw.rds.hget(sw.keys.task("r1", "chatty"), "state") == "running"
    assert lines == ["first", "second"]
    gate.touch()
    c = await sw.completion("chatty", timeout_s=20)
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    lines = [f["line"] for _, f in await sw.rds.xrange(sw.keys.log("r1", "chatty"))]
    assert lines == ["first", "second"]  # nothing shipped twice


async def test_timeout_kills_what_ignores_sigterm(sw: WorkerHarness) -> None:
    pidfile = sw.tmp / "stubborn.pid"
    await sw.start(kill_grace_s=0.5)
    await sw.push("slow", "ssh", host="lo", timeout_s=1.0,
                  command=f"trap '' TERM; sleep 120 & echo $! > {pidfile}; wait")
    c = await sw.completion("slow", timeout_s=20)
    assert (c.outcome, c.reason) == (Outcome.FAILED, "timeout after 1.0s")
    await wait_until(process_gone(int(read_text(pidfile))), 10.0, what="SIGKILL of the group")


async def test_dropped_connection_is_lost_and_never_left_running(
    sw: WorkerHarness, sshd: SshServer  # noqa: F811
) -> None:
    pidfile = sw.tmp / "orphan.pid"
    await sw.start()
    await sw.push("t", "ssh", host="lo", command=f"sleep 120 & echo $! > {pidfile}; wait")
    await wait_until(file_exists(pidfile), 20.0, what="the remote task to start")
    pid = int(read_text(pidfile))
    accepted = sshd.accepted()
    for session in sshd.session_pids():  # sshd's processes for this connection, not the task
        os.kill(session, signal.SIGKILL)
    c = await sw.completion("t", timeout_s=30)
    assert c.outcome is Outcome.LOST, c.reason
    assert c.reason.startswith("ssh: connection to lo lost mid-task")
    assert "may still run" not in c.reason
    # a new connection killed the task's group before reporting: a retry cannot overlap it
    assert sshd.accepted() - accepted == 1
    await wait_until(process_gone(pid), 10.0, what="the orphaned sleep to be killed")


async def test_unknown_and_unreachable_hosts_fail(sw: WorkerHarness) -> None:
    await sw.start()
    await sw.push("nohost", "ssh", host="nowhere", command="true")
    await sw.push("down", "ssh", host="down", command="true")
    nohost, down = await sw.completion("nohost"), await sw.completion("down", timeout_s=20)
    assert nohost.outcome is Outcome.FAILED
    assert nohost.reason.startswith("unknown ssh host 'nowhere'")
    assert down.outcome is Outcome.FAILED and down.reason.startswith("ssh: cannot connect to down")


def test_inventory_loads_from_the_fixture(sshd: SshServer, tmp_path: Path) -> None:  # noqa: F811
    inv = load_inventory(write_inventory(tmp_path / "h.toml", sshd, tmp_path / "r"))
    assert inv["lo"].port == sshd.port and inv["down"].host == "127.0.0.1"
