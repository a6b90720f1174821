"""`dagbroker runners deploy`: start a worker on a host over SSH (the loopback test sshd).

The "remote" python is this venv's interpreter (dagbroker is installed there), reached
through a real sshd login; the deployed worker registers in the test Redis and is stopped
with a shutdown order, as an operator would.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio as aredis
from conftest import RedisServer
from helpers import wait_until
from peers.fixtures import SshServer, sshd  # noqa: F401
from test_worker_support import pid_alive

from broker.keys import Keys
from worker.deploy import DeployError, Target, deploy_main, deploy_runner

ROOT = Path(__file__).resolve().parents[2]


def target(server: SshServer) -> Target:
    return Target(host=server.host, user=server.user, port=server.port)


async def test_deploy_starts_a_worker_that_registers(
    sshd: SshServer, redis_server: RedisServer, rds: aredis.Redis, keys: Keys,  # noqa: F811
    tmp_path: Path,
) -> None:
    rid = f"deployed-{keys.prefix}"
    args = ["--redis-url", redis_server.url, "--prefix", keys.prefix, "--id", rid,
            "--slots", "1", "--data-dir", str(tmp_path / "data"), "--heartbeat-ttl", "5"]
    log = tmp_path / "runner.log"
    pid = await deploy_runner(
        target(sshd), args, key_files=[str(sshd.client_key)], known_hosts=str(sshd.known_hosts),
        python=sys.executable, log_file=str(log), env={"PYTHONPATH": str(ROOT)},
        check_after_s=0.5,
    )
    try:
        await wait_until(lambda: rds.exists(keys.heartbeat(rid)), 20.0, what="registration")
        assert await rds.hget(keys.runner(rid), "pid") == str(pid)
        await rds.xadd(keys.control(rid), {"op": "shutdown"})

        async def gone() -> bool:
            return not pid_alive(pid) and not await rds.exists(keys.runner(rid))

        await wait_until(gone, 20.0, what="the deployed worker to stop")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert f"runner {rid} up" in log.read_text()


async def test_a_worker_that_dies_at_once_is_reported(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    log = tmp_path / "bad.log"
    with pytest.raises(DeployError, match="slots must be at least 1"):
        await deploy_runner(
            target(sshd), ["--redis-url", "redis://127.0.0.1:1/0", "--slots", "0"],
            key_files=[str(sshd.client_key)], known_hosts=str(sshd.known_hosts),
            python=sys.executable, log_file=str(log), env={"PYTHONPATH": str(ROOT)},
            check_after_s=1.5,
        )


def test_cli_verb_reports_failures(
    sshd: SshServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    # the host key is checked: an empty known_hosts file refuses the connection
    empty = sshd.dir / "empty_known_hosts"
    empty.write_text("")
    code = deploy_main([f"{sshd.user}@127.0.0.1:{sshd.port}", "-i", str(sshd.client_key),
                        "--known-hosts", str(empty), "--", "--slots", "1"])
    assert code == 1
    assert "ssh to 127.0.0.1" in capsys.readouterr().err
    assert Target.parse("alice@hpc1:2222") == Target("hpc1", "alice", 2222)
    assert Target.parse("hpc1", port=23) == Target("hpc1", None, 23)
