"""slurm: a node's `init` is one sbatch job per batch that the batch's job array depends on
(`afterok`), on the real single-node cluster of tests/peers.

Jobs are counted from the controller itself (`squeue -t all` lists finished jobs too).
Every batch here is pushed before the worker starts, so one read takes it whole.
"""

from __future__ import annotations

import signal
import subprocess

from helpers import wait_until
from peers.fixtures import SlurmCluster, slurm_cluster  # noqa: F401
from test_slurm_executor import POLL_S, element, sk, slurm_env, slurm_job, worker_process  # noqa: F401
from test_worker_support import WorkerHarness, file_exists, read_text, wk_fixture  # noqa: F401

from broker.wire import Outcome
from worker.executors.slurm_state import ACTIVE_STATES


def states_of(cluster: SlurmCluster, job_ids: set[str], field: str = "%T") -> dict[str, str]:
    """`<id>` or `<id>_<index>` → state (or another squeue field), for every record of these
    jobs SLURM still knows."""
    out = cluster.run("squeue", "-h", "-r", "-t", "all", "-o", f"%i|{field}")
    rows = (line.strip().split("|") for line in out.splitlines() if "|" in line)
    return {i: st for i, st in rows if i.split("_")[0] in job_ids}


def init_record(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    line = cluster.run("scontrol", "-o", "show", "job", job_id).strip()
    return dict(f.split("=", 1) for f in line.split() if "=" in f)


async def test_init_is_one_job_the_array_waits_for(
    sk: WorkerHarness, slurm_env: SlurmCluster  # noqa: F811
) -> None:
    count, gate = sk.tmp / "count", sk.tmp / "gate"
    init = ('while [ ! -e {{ gate }} ]; do sleep 0.1; done; '
            'echo "init $X" >> {{ count }}; echo hello from init')
    params = {"count": str(count), "gate": str(gate)}
    before = slurm_env.job_ids()
    for i in range(3):  # each element sees the init's line already there
        await sk.push(f"t{i}", "slurm", params=params, vars={"i": i},
                      env={"X": "x-{{ count }}"}, init=init,
                      command="test -s {{ count }} && echo task {{ i }}")
    await sk.start()
    array = (await slurm_job(sk, "t0")).split("_")[0]

    async def held() -> bool:  # the elements wait for the init job (held at its gate)
        states = states_of(slurm_env, {array}, "%r")
        return len(states) == 3 and set(states.values()) == {"Dependency"}

    await wait_until(held, 30.0, what="the array's elements to wait for the init job")
    init_id = await sk.rds.hget(sk.keys.task("r1", "t0"), "slurm_init")
    assert element(slurm_env, f"{array}_0")["Dependency"].startswith(f"afterok:{init_id}")
    gate.touch()
    done = {c.node: c for c in await sk.wait_done(3, timeout_s=60)}
    for i in range(3):
        c = done[f"t{i}"]
        assert c.outcome is Outcome.SUCCEEDED, (c.reason, c.tail)
        assert c.tail.index("hello from init") < c.tail.index(f"task {i}")
    assert read_text(count) == f"init x-{count}\n"  # once, on the cluster, with the node's env
    new = slurm_env.job_ids() - before
    assert new == {array, init_id}  # one init job + one array for the batch
    info = init_record(slurm_env, init_id)
    assert info["JobName"].startswith("dagb-init-") and info["Partition"] == "debug"
    assert "ArrayJobId" not in info  # not an array
    kept = sk.tmp / "data" / "logs" / "_init" / f"slurm-{init_id}.log"
    assert read_text(kept) == "hello from init\n"
    jobs_dir = sk.tmp / "data" / "slurm"
    assert not [p for p in jobs_dir.rglob("*") if p.is_file()]  # scripts and outputs removed


async def test_a_failed_init_fails_the_batch_and_no_element_runs(
    sk: WorkerHarness, slurm_env: SlurmCluster  # noqa: F811
) -> None:
    ran = sk.tmp / "ran"
    before = slurm_env.job_ids()
    for i in range(3):
        await sk.push(f"t{i}", "slurm", init=["sh", "-c", "echo broken setup; exit 3"],
                      command=f"touch {ran}.{i}")
    await sk.start()
    for c in await sk.wait_done(3, timeout_s=60):
        assert (c.outcome, c.reason) == (Outcome.FAILED, "init failed: exit 3"), c.tail
        assert c.exit_code is None and "broken setup" in c.tail
    assert not [p for p in sk.tmp.iterdir() if p.name.startswith("ran")]  # no element ran
    new = slurm_env.job_ids() - before
    assert len(new) == 2
    states = states_of(slurm_env, new)
    assert states and not [s for s in states.values() if s in ACTIVE_STATES], states


async def test_cancelling_the_batch_scancels_its_init_job(
    sk: WorkerHarness, slurm_env: SlurmCluster  # noqa: F811
) -> None:
    started = sk.tmp / "init-started"
    ran = sk.tmp / "ran"
    for i in range(2):
        await sk.push(f"t{i}", "slurm", init=f"touch {started}; sleep 120",
                      command=f"touch {ran}")
    settings = await sk.start()
    await wait_until(file_exists(started), 30.0, what="the init job to start")
    init_id = await sk.rds.hget(sk.keys.task("r1", "t0"), "slurm_init")
    for i in range(2):
        await sk.rds.xadd(sk.keys.control(settings.runner_id),
                          {"op": "cancel", "run": "r1", "node": f"t{i}"})
    for c in await sk.wait_done(2, timeout_s=60):
        assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled")
    assert init_record(slurm_env, init_id)["JobState"] == "CANCELLED"
    assert not ran.exists()


async def test_restarted_workers_follow_the_init_job_and_the_array(
    sk: WorkerHarness, slurm_env: SlurmCluster, child_env: dict[str, str]  # noqa: F811
) -> None:
    """Killed while the init job waits (the next worker follows it and copies its output),
    then killed while the element runs (the next one resumes the copy past the init's)."""
    rid, data = "slurm-init-reattach", sk.tmp / "data"
    gate, gate2 = sk.tmp / "gate", sk.tmp / "gate2"
    argv, env = worker_process(sk, slurm_env, child_env, rid, data)
    before = slurm_env.job_ids()
    init = f"while [ ! -e {gate} ]; do sleep 0.1; done; printf 'init %s\\n' ok"
    await sk.push("t", "slurm", init=init,
                  command=f"echo first; while [ ! -e {gate2} ]; do sleep 0.1; done; echo second")
    log = data / "logs" / "r1" / "t" / "attempt-1.log"

    async def first_line() -> bool:
        return log.exists() and "first" in read_text(log)

    with (sk.tmp / "workers.log").open("w") as out:
        first = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            await slurm_job(sk, "t")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert await sk.rds.hget(sk.keys.task("r1", "t"), "slurm_init")
        second = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            gate.touch()
            await wait_until(first_line, 60.0, what="the element's first line after the init's")
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait()
    await sk.start(runner_id=rid)
    gate2.touch()
    c = await sk.completion("t", timeout_s=60)
    assert c.outcome is Outcome.SUCCEEDED, (c.reason, c.tail)
    text = read_text(log)
    assert text.count("init ok") == 1 and text.count("first") == 1, text
    assert text.index("init ok") < text.index("first") < text.index("second"), text
    assert len(slurm_env.job_ids() - before) == 2  # nothing submitted twice
