"""Worker.start re-attaches on its own, through the executors' Reattachable protocol.

A real `python -m worker` process submits a SLURM job and is killed with SIGKILL while the
job runs. A new in-process worker with the same runner id is only started: nobody calls
find_reattachable for it. Its start() asks every registered executor that can re-attach
(worker/executors/base.py), so the slurm executor follows the job to its end, and the task
completes with the job's output, submitted once.
"""

from __future__ import annotations

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


async def test_worker_start_follows_the_job_of_its_previous_process(
    wk: WorkerHarness, slurm_env: SlurmCluster, child_env: dict[str, str]  # noqa: F811
) -> None:
    rid = "reattach-on-start"
    data = wk.tmp / "data"
    argv, env = worker_process(wk, slurm_env, child_env, rid, data)
    before = slurm_env.job_ids()
    await wk.push("t", "slurm", command="echo first; sleep 3; echo second")
    log = data / "logs" / "r1" / "t" / "attempt-1.log"
    job = await kill_once_running(wk, slurm_env, argv, env, log)

    await wk.start(runner_id=rid, slots=2, data_dir=str(data), slurm_poll_interval_s=POLL_S,
                   heartbeat_ttl_s=30.0)
    c = await wk.completion("t", timeout_s=60)
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    assert "first" in c.tail and "second" in c.tail
    assert len(slurm_env.job_ids() - before) == 1  # followed, never submitted twice
    assert await wk.rds.hget(wk.keys.task("r1", "t"), "slurm_job") == job
    assert await wk.pending() == 0
