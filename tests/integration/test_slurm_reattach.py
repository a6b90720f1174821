"""Re-attach: a worker killed while its SLURM job runs comes back and follows the same job.

The first worker is a real `python -m worker` process, killed with SIGKILL once the job is
recorded in the task hash. The job runs on; a new worker with the same runner id finds its
pending entry (find_reattachable), polls the job instead of submitting it again, and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import redis.asyncio as aredis
from helpers import wait_until
from peers.fixtures import SlurmCluster, slurm_cluster  # noqa: F401
from test_slurm_executor import (  # noqa: F401
    POLL_S,
    element,
    kill_once_running,
    slurm_env,
    slurm_job,
    worker_process,
)
from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.wire import Outcome
from worker.executors.slurm_reattach import find_reattachable, run_reattached
from worker.service import Worker


async def test_restarted_worker_follows_its_job(
    wk: WorkerHarness, slurm_env: SlurmCluster, child_env: dict[str, str]  # noqa: F811
) -> None:
    rid = "slurm-reattach-1"
    data = wk.tmp / "data"
    argv, env = worker_process(wk, slurm_env, child_env, rid, data)
    before = slurm_env.job_ids()
    # the result is written before the restart: the new worker must not clear it
    await wk.push("t", "slurm", command='echo \'{"ok": true}\' > "$DAGB_RESULT"; '
                                        'echo first; sleep 4; echo second')
    log = data / "logs" / "r1" / "t" / "attempt-1.log"
    job = await kill_once_running(wk, slurm_env, argv, env, log)

    redis = aredis.Redis.from_url(wk.url, decode_responses=True)
    worker = Worker(wk.settings(runner_id=rid, slots=2), redis, base_env=dict(os.environ))
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        await wait_until(lambda: redis.exists(wk.keys.heartbeat(rid)), 10.0, what="registered")
        # what Worker.start does once wired; [] if it already did (held entries are skipped)
        handles = await find_reattachable(redis, wk.keys, worker.streams, rid, held=worker.inflight)
        worker.inflight.add(handles)
        resumed = asyncio.create_task(run_reattached(handles, worker.ctx)) if handles else None
        c = await wk.completion("t", timeout_s=60)
        if resumed is not None:
            assert await resumed
            worker.inflight.discard(handles)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 15)
        await redis.aclose()
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    assert c.result == {"ok": True}
    assert "first" in c.tail and "second" in c.tail
    assert len(slurm_env.job_ids() - before) == 1  # followed, never submitted twice
    assert await wk.rds.hget(wk.keys.task("r1", "t"), "slurm_job") == job
    assert await wk.pending() == 0


async def test_only_own_running_entries_with_a_job_qualify(wk: WorkerHarness) -> None:
    """Entries of another attempt, without a job, or of another executor are left alone."""
    rid = "slurm-reattach-2"
    for node in ("mine", "old", "nojob", "sh"):
        await wk.push(node, "shell" if node == "sh" else "slurm", command="true")
    await wk.rds.xgroup_create(wk.keys.queue("cpu"), "workers", id="0")
    await wk.rds.xreadgroup("workers", rid, {wk.keys.queue("cpu"): ">"}, count=10)
    for node, attempt in (("mine", 1), ("old", 2), ("nojob", None), ("sh", 1)):
        fields = {"state": "running", "runner": rid}
        if attempt is not None:
            fields |= {"slurm_job": "123_0", "slurm_attempt": str(attempt)}
        await wk.rds.hset(wk.keys.task("r1", node), mapping=fields)
    handles = await find_reattachable(wk.rds, wk.keys, [wk.keys.queue("cpu")], rid)
    assert [h.msg.node for h in handles] == ["mine"]
    assert await find_reattachable(wk.rds, wk.keys, [wk.keys.queue("cpu")], "someone-else") == []


async def test_a_job_of_an_earlier_attempt_is_cancelled(
    wk: WorkerHarness, slurm_env: SlurmCluster  # noqa: F811
) -> None:
    """Attempt 2 of a task whose attempt 1 was lost with its job still queued or running:
    the old job is cancelled (nobody would collect it) and attempt 2 gets its own."""
    old = slurm_env.run("sbatch", "--parsable", "--array=0-0", "-o", "/dev/null",
                        "--wrap", "sleep 120").strip()
    await wk.push("t", "slurm", attempt=2, command="echo second attempt")
    await wk.rds.hset(wk.keys.task("r1", "t"), mapping={
        "slurm_job": f"{old}_0", "slurm_attempt": "1"})
    await wk.start()
    c = await wk.completion("t", timeout_s=60)
    assert c.outcome is Outcome.SUCCEEDED and "second attempt" in c.tail
    assert element(slurm_env, f"{old}_0")["JobState"] == "CANCELLED"
    new = await wk.rds.hget(wk.keys.task("r1", "t"), "slurm_job")
    assert new != f"{old}_0"
    assert await wk.rds.hget(wk.keys.task("r1", "t"), "slurm_attempt") == "2"
