"""The aws_batch executor against a real moto server (Batch + IAM) on loopback.

moto's no-Docker Batch ends jobs SUCCEEDED at submit time; its Docker mode, with no Docker
daemon here, walks a job through its states to FAILED; `hold_jobs` keeps jobs SUBMITTED so
that a cancel or a timeout must TerminateJob them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis.asyncio as aredis
from helpers import wait_until
from peers.moto_server import MotoServer, moto_fixture  # noqa: F401

from broker.keys import Keys
from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.executors.aws_batch import AwsBatchExecutor
from worker.executors.aws_config import AwsBatchConfig
from worker.executors.aws_logs import LOG_GROUP, JobLogTail, stream_of
from worker.executors.base import ExecContext
from worker.handle import TaskHandle

ROLE = "arn:aws:iam::123456789012:role/task"


class BatchEnv:
    """A compute environment made once per module (moto's first one costs seconds), a fresh
    job queue per test, and a synchronous boto3 client to look at what the executor did."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.iam = boto3.client("iam", **moto.client_kwargs())
        self.batch = boto3.client("batch", **moto.client_kwargs())
        role = self.iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
        self.ce = self.batch.create_compute_environment(
            computeEnvironmentName="dagb-test-ce", type="UNMANAGED", state="ENABLED",
            serviceRole=role["Role"]["Arn"])["computeEnvironmentArn"]
        self.queue = ""

    def new_queue(self) -> str:
        self.queue = f"q{uuid.uuid4().hex[:10]}"
        self.batch.create_job_queue(
            jobQueueName=self.queue, state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": self.ce}])
        return self.queue

    def jobs(self, status: str) -> list[dict[str, Any]]:
        """This test's jobs in that status, described (array parents, not their children)."""
        r = self.batch.list_jobs(jobQueue=self.queue, jobStatus=status)
        ids = [j["jobId"] for j in r["jobSummaryList"] if ":" not in j["jobId"]]
        return list(self.batch.describe_jobs(jobs=ids)["jobs"]) if ids else []

    def job(self, job_id: str) -> dict[str, Any]:
        [job] = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        return dict(job)

    def definitions(self) -> list[dict[str, Any]]:
        r = self.batch.describe_job_definitions(status="ACTIVE")
        return [d for d in r["jobDefinitions"] if d["jobDefinitionName"].startswith(self.queue)]


@pytest.fixture(scope="module")
def batch_env(moto: MotoServer) -> BatchEnv:
    moto.reset()
    return BatchEnv(moto)


@pytest.fixture
def env(batch_env: BatchEnv) -> BatchEnv:
    """This test's queue, with Batch back in no-Docker mode and default job transitions."""
    batch_env.moto.api("/moto-api/state-manager/unset-transition", {"model_name": "batch::job"})
    batch_env.moto.batch_mode(use_docker=False)
    batch_env.new_queue()
    return batch_env


def executor(env: BatchEnv, **over: Any) -> AwsBatchExecutor:
    kw = env.moto.client_kwargs()
    options: dict[str, Any] = {
        "job_queue": env.queue, "region": kw.pop("region_name"),
        "endpoint_url": kw.pop("endpoint_url"), "client_options": kw, "poll_initial_s": 0.05,
        "poll_max_s": 0.2, "job_role_arn": ROLE, "name_prefix": env.queue,
    }
    return AwsBatchExecutor(AwsBatchConfig(**(options | over)))


def handle(node: str, *, command: str | list[str] = "echo hi", image: str | None = "busybox",
           **spec: Any) -> TaskHandle:
    ts = TaskSpec(node=node, executor="aws_batch", command=command, image=image, **spec)
    msg = TaskMessage(msg_id="1-0", stream="q", run="r1", node=node, attempt=1, tpl=node,
                      batch="aws_batch:cpu:x", spec=ts, params={"who": "it's me"})
    return TaskHandle(msg)


@pytest.fixture
async def ctx(rds: aredis.Redis, keys: Keys, tmp_path: Path) -> ExecContext:
    return ExecContext(runner_id="r-aws", redis=rds, keys=keys, data_dir=tmp_path,
                       kill_grace_s=1.0, base_env={})


async def test_single_job_succeeds(env: BatchEnv, ctx: ExecContext, tmp_path: Path) -> None:
    h = handle("a", command="echo {{ who }}", cores=1.5, memory_mb=512, timeout_s=600)
    [c] = await executor(env).run_batch([h], ctx)
    assert (c.outcome, c.exit_code, c.reason) == (Outcome.SUCCEEDED, 0, "")
    [job] = env.jobs("SUCCEEDED")
    cmd = {e["name"]: e["value"] for e in job["container"]["environment"]}["DAGB_CMD_0"]
    assert "export DAGB_NODE=a" in cmd
    assert cmd.endswith("echo 'it'\"'\"'s me'")  # the placeholder, shell-quoted
    assert job["timeout"] == {"attemptDurationSeconds": 630}
    [jd] = env.definitions()
    props = jd["containerProperties"]
    assert (props["image"], props["jobRoleArn"]) == ("busybox", ROLE)
    assert {r["type"]: r["value"] for r in props["resourceRequirements"]} == {
        "VCPU": "2", "MEMORY": "512"}
    log = (tmp_path / "logs" / "r1" / "a" / "attempt-1.log").read_text()
    assert f"aws batch job {job['jobId']} submitted" in log and "SUCCEEDED" in log


async def test_log_notes_stream_live_to_redis(env: BatchEnv, ctx: ExecContext,
                                              rds: aredis.Redis, keys: Keys) -> None:
    [c] = await executor(env).run_batch([handle("a")], ctx)
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    lines = [f["line"] for _, f in await rds.xrange(keys.log("r1", "a"))]
    assert len(lines) == 2, lines
    assert lines[0].startswith("[dagbroker] aws batch job ") and "submitted" in lines[0]
    assert "SUCCEEDED" in lines[1]


async def test_container_output_is_copied_from_cloudwatch(env: BatchEnv, tmp_path: Path) -> None:
    """What Batch's awslogs driver writes (put here by the test, as the container would)
    reaches the attempt log; each pull appends only what is new."""
    cw = boto3.client("logs", **env.moto.client_kwargs())
    stream = f"dagb/default/{uuid.uuid4().hex}"
    with contextlib.suppress(cw.exceptions.ResourceAlreadyExistsException):
        cw.create_log_group(logGroupName=LOG_GROUP)
    cw.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)

    def put(*messages: str) -> None:
        t = int(time.time() * 1000)
        cw.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                          logEvents=[{"timestamp": t, "message": m} for m in messages])

    ex = executor(env)
    assert ex.config is not None
    log = tmp_path / "attempt-1.log"
    tail = JobLogTail(log)
    async with ex.client(ex.config, "logs") as logs:
        assert await tail.pull(logs) == 0  # no stream known yet (job not started)
        tail.stream = stream
        put("step 1", "step 2")
        assert await tail.pull(logs) == 2
        assert await tail.pull(logs) == 0
        put("step 3")
        assert await tail.pull(logs) == 1
    assert log.read_text() == "step 1\nstep 2\nstep 3\n"
    assert stream_of({"container": {"logStreamName": stream}}) == stream
    assert stream_of({"container": {}}) is None


async def test_batch_of_same_shape_is_one_array_job(env: BatchEnv, ctx: ExecContext) -> None:
    ex = executor(env)
    handles = [handle(f"s[{i}]", command=["echo", str(i)]) for i in range(3)]
    handles.append(handle("other", image="alpine"))  # another shape: its own job
    completions = await ex.run_batch(handles, ctx)
    assert [c.node for c in completions] == ["s[0]", "s[1]", "s[2]", "other"]
    assert all(c.outcome is Outcome.SUCCEEDED for c in completions), completions
    jobs = env.jobs("SUCCEEDED")
    assert len(jobs) == 2
    [job] = [j for j in jobs if "arrayProperties" in j]
    assert job["arrayProperties"]["size"] == 3
    cmds = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert [cmds[f"DAGB_CMD_{i}"].splitlines()[-1] for i in range(3)] == [
        "echo 0", "echo 1", "echo 2"]
    assert len(env.definitions()) == 2
    await ex.run_batch([handle("again")], ctx)  # the definition is reused, not registered again
    await executor(env).run_batch([handle("new")], ctx)  # found again by name by a new worker
    assert len(env.definitions()) == 2


async def test_failed_job_reports_failure(env: BatchEnv, ctx: ExecContext) -> None:
    env.moto.batch_mode(use_docker=True)  # no Docker daemon: the job runs through to FAILED
    [c] = await executor(env).run_batch([handle("f", image="dagbroker-test/never:0")], ctx)
    assert c.outcome is Outcome.FAILED
    [job] = env.jobs("FAILED")
    assert c.reason == f"aws batch job {job['jobId']} failed"


async def test_tasks_that_cannot_be_submitted(env: BatchEnv, ctx: ExecContext) -> None:
    no_image, no_cmd = handle("i", image=None), handle("c", command=[])
    bad = handle("p", command="echo {{ nope }}")
    results = await executor(env).run_batch([no_image, no_cmd, bad], ctx)
    assert [c.reason for c in results] == [
        "an aws_batch task needs an image", "an aws_batch task needs a command",
        "unknown placeholder {{ nope }}"]
    assert env.jobs("SUCCEEDED") == []
    [c] = await executor(env, job_queue="no-such-queue").run_batch([handle("q")], ctx)
    assert c.outcome is Outcome.FAILED and c.reason.startswith("aws batch submit failed")
    [c] = await AwsBatchExecutor().run_batch([handle("u")], ctx)
    assert c.reason == "aws_batch is not configured on runner r-aws (no job queue)"


def hold_jobs(env: BatchEnv) -> None:
    env.moto.batch_mode(use_docker=True)
    env.moto.hold_jobs()


async def submitted(env: BatchEnv) -> dict[str, Any]:
    async def one() -> list[dict[str, Any]]:
        return env.jobs("SUBMITTED")

    [job] = await wait_until(one, 10.0, what="the job to be submitted")
    return job


async def test_cancel_terminates_the_job(env: BatchEnv, ctx: ExecContext) -> None:
    hold_jobs(env)
    h = handle("long", command="sleep 3600")
    slow_polls = executor(env, poll_initial_s=5.0, poll_max_s=5.0)
    running = asyncio.create_task(slow_polls.run_batch([h], ctx))
    job = await submitted(env)
    h.request_stop(Outcome.CANCELLED, "cancelled by alice")
    [c] = await asyncio.wait_for(running, 4)  # woken by the stop, not by the next poll
    assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled by alice")
    assert env.job(job["jobId"])["statusReason"] == "dagbroker: cancelled by alice"


async def test_timeout_terminates_the_job(env: BatchEnv, ctx: ExecContext) -> None:
    hold_jobs(env)
    [c] = await executor(env).run_batch([handle("slow", timeout_s=0.3)], ctx)
    assert (c.outcome, c.reason) == (Outcome.FAILED, "timeout after 0.3s")
    [job] = env.jobs("SUBMITTED")
    assert job["statusReason"] == "dagbroker: timeout"


async def test_stopping_an_array(env: BatchEnv, ctx: ExecContext) -> None:
    hold_jobs(env)
    hs = [handle(f"m[{i}]") for i in range(3)]
    running = asyncio.create_task(executor(env).run_batch(hs, ctx))
    array_id = (await submitted(env))["jobId"]

    async def child_terminated() -> bool:
        return "statusReason" in env.job(f"{array_id}:1")

    hs[1].request_stop(Outcome.CANCELLED, "one cancelled")  # only that child is terminated
    await wait_until(child_terminated, 10.0, what="child 1 to be terminated")
    assert "statusReason" not in env.job(array_id)
    for h in (hs[0], hs[2]):
        h.request_stop(Outcome.HANDED_BACK, "runner shutting down")
    completions = await asyncio.wait_for(running, 4)
    assert [c.outcome for c in completions] == [
        Outcome.HANDED_BACK, Outcome.CANCELLED, Outcome.HANDED_BACK]
    assert env.job(array_id)["statusReason"] == "dagbroker: runner shutting down"  # whole array
