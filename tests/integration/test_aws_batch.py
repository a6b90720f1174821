"""The aws_batch executor against a real moto server (Batch + IAM) on loopback.

moto's no-Docker Batch ends jobs SUCCEEDED at submit time; its Docker mode, with no Docker
daemon here, walks a job through its states to FAILED; `hold_jobs` keeps jobs SUBMITTED so
that a cancel or a timeout must TerminateJob them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from aiobotocore.session import get_session
from helpers import wait_until
from peers.moto_server import MotoServer, aws_fixture, moto_fixture  # noqa: F401

from broker.keys import Keys
from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.executors.aws_batch import AwsBatchExecutor
from worker.executors.aws_config import AwsBatchConfig
from worker.executors.base import ExecContext
from worker.handle import TaskHandle

QUEUE = "dagb-test-queue"


async def make_queue(aws: MotoServer) -> None:
    kw = aws.client_kwargs()
    async with get_session().create_client("iam", **kw) as iam, \
            get_session().create_client("batch", **kw) as batch:
        role = await iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
        ce = await batch.create_compute_environment(
            computeEnvironmentName="dagb-test-ce", type="UNMANAGED", state="ENABLED",
            serviceRole=role["Role"]["Arn"])
        await batch.create_job_queue(
            jobQueueName=QUEUE, state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1,
                                      "computeEnvironment": ce["computeEnvironmentArn"]}])


async def batch_call(aws: MotoServer, op: str, **kw: Any) -> Any:
    async with get_session().create_client("batch", **aws.client_kwargs()) as batch:
        return await getattr(batch, op)(**kw)


def executor(aws: MotoServer, **over: Any) -> AwsBatchExecutor:
    kw = aws.client_kwargs()
    options: dict[str, Any] = {
        "job_queue": QUEUE, "region": kw.pop("region_name"), "endpoint_url": kw.pop("endpoint_url"),
        "client_options": kw, "poll_initial_s": 0.05, "poll_max_s": 0.2,
        "job_role_arn": "arn:aws:iam::123456789012:role/task",
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


async def jobs_in_queue(aws: MotoServer, status: str) -> list[dict[str, Any]]:
    """The queue's jobs in that status (array parents, not their children)."""
    r = await batch_call(aws, "list_jobs", jobQueue=QUEUE, jobStatus=status)
    return [j for j in r["jobSummaryList"] if ":" not in j["jobId"]]


async def test_single_job_succeeds(aws: MotoServer, ctx: ExecContext, tmp_path: Path) -> None:
    await make_queue(aws)
    h = handle("a", command="echo {{ who }}", cores=1.5, memory_mb=512, timeout_s=600)
    [c] = await executor(aws).run_batch([h], ctx)
    assert (c.outcome, c.exit_code, c.reason) == (Outcome.SUCCEEDED, 0, "")
    [summary] = await jobs_in_queue(aws, "SUCCEEDED")
    [job] = (await batch_call(aws, "describe_jobs", jobs=[summary["jobId"]]))["jobs"]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert "export DAGB_NODE=a" in env["DAGB_CMD_0"]
    assert env["DAGB_CMD_0"].endswith("echo 'it'\"'\"'s me'")  # shell-quoted placeholder
    assert job["timeout"] == {"attemptDurationSeconds": 630}
    [jd] = (await batch_call(aws, "describe_job_definitions", status="ACTIVE"))["jobDefinitions"]
    props = jd["containerProperties"]
    assert props["image"] == "busybox"
    assert props["jobRoleArn"] == "arn:aws:iam::123456789012:role/task"
    assert {r["type"]: r["value"] for r in props["resourceRequirements"]} == {
        "VCPU": "2", "MEMORY": "512"}
    log = (tmp_path / "logs" / "r1" / "a" / "attempt-1.log").read_text()
    assert f"aws batch job {summary['jobId']} submitted" in log and "SUCCEEDED" in log


async def test_batch_of_same_shape_is_one_array_job(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    ex = executor(aws)
    handles = [handle(f"s[{i}]", command=["echo", str(i)]) for i in range(3)]
    handles.append(handle("other", image="alpine"))  # another shape: its own job
    completions = await ex.run_batch(handles, ctx)
    assert [c.node for c in completions] == ["s[0]", "s[1]", "s[2]", "other"]
    assert all(c.outcome is Outcome.SUCCEEDED for c in completions), completions
    jobs = await jobs_in_queue(aws, "SUCCEEDED")
    assert len(jobs) == 2
    described = (await batch_call(aws, "describe_jobs", jobs=[j["jobId"] for j in jobs]))["jobs"]
    [job] = [j for j in described if "arrayProperties" in j]
    assert job["arrayProperties"]["size"] == 3
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert [env[f"DAGB_CMD_{i}"].splitlines()[-1] for i in range(3)] == [
        "echo 0", "echo 1", "echo 2"]
    assert len((await batch_call(aws, "describe_job_definitions",
                                 status="ACTIVE"))["jobDefinitions"]) == 2
    await ex.run_batch([handle("again")], ctx)  # the definition is reused, not registered again
    assert len((await batch_call(aws, "describe_job_definitions",
                                 status="ACTIVE"))["jobDefinitions"]) == 2


async def test_failed_job_reports_failure(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    aws.batch_mode(use_docker=True)  # no Docker daemon: the job runs through to FAILED
    [c] = await executor(aws).run_batch([handle("f", image="dagbroker-test/never:0")], ctx)
    assert c.outcome is Outcome.FAILED
    assert c.reason.startswith("aws batch job ") and c.reason.endswith(" failed")


async def test_tasks_that_cannot_be_submitted(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    no_image, no_cmd = handle("i", image=None), handle("c", command=[])
    bad = handle("p", command="echo {{ nope }}")
    results = await executor(aws).run_batch([no_image, no_cmd, bad], ctx)
    assert [c.reason for c in results] == [
        "an aws_batch task needs an image", "an aws_batch task needs a command",
        "unknown placeholder {{ nope }}"]
    assert await jobs_in_queue(aws, "SUCCEEDED") == []
    wrong = executor(aws, job_queue="no-such-queue")
    [c] = await wrong.run_batch([handle("q")], ctx)
    assert c.outcome is Outcome.FAILED and c.reason.startswith("aws batch submit failed")
    [c] = await AwsBatchExecutor().run_batch([handle("u")], ctx)
    assert c.reason == "aws_batch is not configured on runner r-aws (no job queue)"


async def held_job(aws: MotoServer, n: int = 1) -> list[dict[str, Any]]:
    async def submitted() -> list[dict[str, Any]]:
        jobs = await jobs_in_queue(aws, "SUBMITTED")
        return jobs if len(jobs) >= n else []

    return await wait_until(submitted, 10.0, what="the job to be submitted")


async def test_cancel_terminates_the_job(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    aws.batch_mode(use_docker=True)
    aws.hold_jobs()
    h = handle("long", command="sleep 3600")
    slow_polls = executor(aws, poll_initial_s=5.0, poll_max_s=5.0)
    running = asyncio.create_task(slow_polls.run_batch([h], ctx))
    [job] = await held_job(aws)
    h.request_stop(Outcome.CANCELLED, "cancelled by alice")
    [c] = await asyncio.wait_for(running, 5)  # woken by the stop, not by the next poll
    assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled by alice")
    [desc] = (await batch_call(aws, "describe_jobs", jobs=[job["jobId"]]))["jobs"]
    assert desc["statusReason"] == "dagbroker: cancelled by alice"


async def test_timeout_terminates_the_job(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    aws.batch_mode(use_docker=True)
    aws.hold_jobs()
    [c] = await executor(aws).run_batch([handle("slow", timeout_s=0.3)], ctx)
    assert (c.outcome, c.reason) == (Outcome.FAILED, "timeout after 0.3s")
    [job] = await jobs_in_queue(aws, "SUBMITTED")
    [desc] = (await batch_call(aws, "describe_jobs", jobs=[job["jobId"]]))["jobs"]
    assert desc["statusReason"] == "dagbroker: timeout"


async def test_stopping_an_array(aws: MotoServer, ctx: ExecContext) -> None:
    await make_queue(aws)
    aws.batch_mode(use_docker=True)
    aws.hold_jobs()
    hs = [handle(f"m[{i}]") for i in range(3)]
    running = asyncio.create_task(executor(aws).run_batch(hs, ctx))
    [parent] = await held_job(aws)
    array_id = parent["jobId"]
    hs[1].request_stop(Outcome.CANCELLED, "one cancelled")  # only that child is terminated
    await wait_until(lambda: _reason(aws, f"{array_id}:1"), 10.0, what="child 1 terminated")
    assert await _reason(aws, array_id) is None
    for h in (hs[0], hs[2]):
        h.request_stop(Outcome.HANDED_BACK, "runner shutting down")
    completions = await asyncio.wait_for(running, 5)
    assert [c.outcome for c in completions] == [
        Outcome.HANDED_BACK, Outcome.CANCELLED, Outcome.HANDED_BACK]
    assert await _reason(aws, array_id) == "dagbroker: runner shutting down"  # the whole array


async def _reason(aws: MotoServer, job_id: str) -> str | None:
    [desc] = (await batch_call(aws, "describe_jobs", jobs=[job_id]))["jobs"]
    return desc.get("statusReason")
