"""The slurm executor against a real single-node SLURM cluster (tests/peers/start-slurm.sh).

A worker runs in this process with SLURM_CONF pointing at the test cluster; tasks are
dispatched by writing stream entries as the broker does. Submissions are counted from the
controller itself (`squeue -t all` lists every job it knows, finished ones included).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from peers.fixtures import SlurmCluster, slurm_cluster  # noqa: F401
from test_worker_support import WorkerHarness, read_text, wk_fixture  # noqa: F401

from broker.wire import Outcome
from worker.executors import slurm
from worker.executors.slurm_script import SlurmConfig
from worker.executors.slurm_state import NO_VAL, parse_indices

POLL_S = 0.2


@pytest.fixture
def slurm_env(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> Iterator[SlurmCluster]:
    """In-process workers see the test cluster (their tasks inherit os.environ) and poll fast."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    before = slurm.EXECUTOR.config
    slurm.EXECUTOR.configure(SlurmConfig(poll_interval_s=POLL_S))
    yield slurm_cluster
    slurm.EXECUTOR.configure(before)


@pytest.fixture
async def sk(wk: WorkerHarness, slurm_env: SlurmCluster) -> AsyncIterator[WorkerHarness]:
    yield wk


def element(cluster: SlurmCluster, job: str) -> dict[str, str]:
    """The `scontrol -o show job` record of array element `<id>_<index>`, as a dict (an
    element cancelled while pending stays in its array's unsplit record)."""
    array_id, _, index = job.partition("_")
    records = [dict(f.split("=", 1) for f in line.split() if "=" in f)
               for line in cluster.run("scontrol", "-o", "show", "job", array_id).splitlines()]
    for fields in records:
        if int(index) in parse_indices(fields.get("ArrayTaskId", "")):
            return fields
    for fields in records:  # the array's own record stands for what it does not list
        if fields.get("ArrayTaskId") == NO_VAL:
            return fields
    raise AssertionError(f"SLURM does not know {job}")


def worker_process(
    wk: WorkerHarness, cluster: SlurmCluster, child_env: dict[str, str], rid: str, data: Path
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of a real `python -m worker` process on the test cluster, as the restart
    tests start and SIGKILL it (a runner id and data dir its successor reuses)."""
    argv = [sys.executable, "-m", "worker", "--redis-url", wk.url, "--prefix", wk.keys.prefix,
            "--id", rid, "--data-dir", str(data), "--slots", "2", "--heartbeat-ttl", "30",
            "--slurm-poll-interval", str(POLL_S)]
    return argv, dict(child_env, SLURM_CONF=str(cluster.conf))


async def kill_once_running(
    wk: WorkerHarness, cluster: SlurmCluster, argv: list[str], env: dict[str, str], log: Path
) -> str:
    """Run the worker process until task `t`'s job runs and its first output line ("first")
    reached the attempt log, then SIGKILL it. → the job; `t` stays running and pending."""
    with (wk.tmp / "first-worker.log").open("w") as out:
        first = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    async def started() -> bool:  # the first worker copied the job's first line
        return log.exists() and "first" in log.read_text()

    try:
        job = await slurm_job(wk, "t")
        await wait_until(started, 30.0, what="the job's first output")
        assert element(cluster, job)["JobState"] == "RUNNING"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert await wk.task_state("t") == "running" and await wk.pending() == 1
    return job


async def slurm_job(wk: WorkerHarness, node: str) -> str:
    async def recorded() -> str | None:
        return await wk.rds.hget(wk.keys.task("r1", node), "slurm_job")

    return await wait_until(recorded, 30.0, what=f"SLURM job of {node}")


async def test_a_batch_is_one_job_array(
    sk: WorkerHarness, slurm_env: SlurmCluster
) -> None:
    marker = sk.tmp / "pwned"
    value = f"x'\n#SBATCH --job-name=pwned\n#SBATCH --partition=nope\n$(touch {marker}) ;\"$HOME`"
    out = sk.tmp / "out.txt"
    before = slurm_env.job_ids()
    params = {"v": value, "out": str(out), "name": "world"}
    await sk.push("ok", "slurm", params=params, env={"GREETING": "hi {{ name }}"},
                  command='echo "$GREETING $DAGB_NODE $DAGB_ATTEMPT"; '
                          'printf %s {{ v }} > {{ out }}; echo \'{"n": 1}\' > "$DAGB_RESULT"')
    await sk.push("bad", "slurm", command="echo oops >&2; exit 3")
    await sk.push("argv", "slurm", params=params, command=["printf", "[%s]", "{{ v }}"])
    await sk.start()
    await sk.wait_done(3, timeout_s=60)
    got = {c.node: c for c in await sk.done()}
    assert len(slurm_env.job_ids() - before) == 1  # one array for the batch
    ok, bad, argv = got["ok"], got["bad"], got["argv"]
    assert ok.outcome is Outcome.SUCCEEDED, ok.reason
    assert ok.result == {"n": 1} and ok.exit_code == 0
    assert "hi world ok 1" in ok.tail
    assert read_text(out) == value  # one literal argument, newlines and all
    assert argv.outcome is Outcome.SUCCEEDED and argv.tail == f"[{value}]"
    assert not marker.exists()
    assert (bad.outcome, bad.reason, bad.exit_code) == (
        Outcome.FAILED, "slurm: FAILED (exit code 3)", 3)
    assert "oops" in bad.tail and "SLURM job" in bad.tail
    job = await sk.rds.hget(sk.keys.task("r1", "ok"), "slurm_job")
    info = element(slurm_env, job)
    assert info["JobName"].startswith("dagb-") and info["Partition"] == "debug"
    log = sk.tmp / "data" / "logs" / "r1" / "ok" / "attempt-1.log"
    assert "hi world ok 1" in read_text(log)
    jobs_dir = sk.tmp / "data" / "slurm"
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())  # script and outputs removed


async def test_cancel_scancels_the_job(sk: WorkerHarness, slurm_env: SlurmCluster) -> None:
    settings = await sk.start()
    await sk.push("long", "slurm", command="echo started; sleep 120")
    job = await slurm_job(sk, "long")
    log = sk.tmp / "data" / "logs" / "r1" / "long" / "attempt-1.log"

    async def streamed() -> bool:  # the job's output reaches the attempt log while it runs
        return log.exists() and "started" in read_text(log)

    await wait_until(streamed, 30.0, what="the job's output in the attempt log")

    async def shipped() -> bool:  # and from there, live, to the task's log stream in Redis
        entries = await sk.rds.xrange(sk.keys.log("r1", "long"))
        return any(f["line"] == "started" and f["attempt"] == "1" for _, f in entries)

    await wait_until(shipped, 30.0, what="the job's output in dagb:log")
    assert element(slurm_env, job)["JobState"] == "RUNNING"  # (still running meanwhile)
    await sk.rds.xadd(sk.keys.control(settings.runner_id),
                      {"op": "cancel", "run": "r1", "node": "long"})
    c = await sk.completion("long", timeout_s=30)
    assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled")
    assert element(slurm_env, job)["JobState"] == "CANCELLED"
    assert "started" in c.tail
    lines = [f["line"] for _, f in await sk.rds.xrange(sk.keys.log("r1", "long"))]
    assert lines.count("started") == 1  # shipped once
    assert any("cancelled" in line for line in lines)  # the worker's closing note too


async def test_timeout_scancels_the_job(sk: WorkerHarness, slurm_env: SlurmCluster) -> None:
    await sk.start()
    await sk.push("slow", "slurm", command="sleep 120", timeout_s=1.0)
    c = await sk.completion("slow", timeout_s=40)
    assert (c.outcome, c.reason) == (Outcome.FAILED, "timeout after 1.0s")
    job = await sk.rds.hget(sk.keys.task("r1", "slow"), "slurm_job")
    assert element(slurm_env, job)["JobState"] == "CANCELLED"
    assert element(slurm_env, job)["TimeLimit"] == "00:01:00"  # --time from timeout_s


async def test_out_of_memory_is_its_own_reason(sk: WorkerHarness, slurm_env: SlurmCluster) -> None:
    if not slurm_env.cgroup:
        if os.environ.get("CI"):
            pytest.fail("the test SLURM cluster has no cgroup memory enforcement")
        pytest.skip("no cgroup v1 memory controller: SLURM cannot enforce --mem here")
    await sk.start()
    hog = "import time; a = b'x' * (400 << 20); time.sleep(10)"
    await sk.push("hog", "slurm", command=[sys.executable, "-c", hog], memory_mb=64)
    c = await sk.completion("hog", timeout_s=40)
    assert (c.outcome, c.reason) == (Outcome.FAILED, "slurm: OUT_OF_MEMORY")
    job = await sk.rds.hget(sk.keys.task("r1", "hog"), "slurm_job")
    assert element(slurm_env, job)["MinMemoryNode"] == "64M"


async def test_sbatch_rejection_fails_the_tasks(sk: WorkerHarness) -> None:
    await sk.start()
    await sk.push("p", "slurm", command="true", labels={"partition": "no-such-partition"})
    c = await sk.completion("p", timeout_s=30)
    assert c.outcome is Outcome.FAILED
    assert c.reason.startswith("sbatch failed:") and "partition" in c.reason.lower()

