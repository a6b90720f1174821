"""The pure half of aws_batch: what a container runs (checked with a real /bin/sh), array
chunks, and how a DescribeJobs record becomes an outcome."""

from __future__ import annotations

import os
import subprocess

import pytest

from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.cli import parse_settings
from worker.executors.attempt import task_values
from worker.executors.aws_config import AwsBatchConfig, aws_batch_config
from worker.executors.aws_jobs import (
    JobSpecError,
    backoff,
    chunk_scripts,
    container_overrides,
    job_name,
    job_outcome,
    task_script,
)


def msg(node: str, command: str | list[str], **spec: object) -> TaskMessage:
    ts = TaskSpec(node=node, executor="aws_batch", command=command, image="busybox", **spec)
    return TaskMessage(msg_id="1-0", stream="q", run="r9", node=node, attempt=2, tpl="t",
                       batch="b", spec=ts, params={"x": "a b; $(id)"})


def run_container(
    overrides: dict[str, object], index: int | None
) -> subprocess.CompletedProcess[str]:
    """What the container does with these overrides (the dispatcher, in a real shell)."""
    env = {"PATH": os.environ["PATH"]}
    env.update({e["name"]: e["value"] for e in overrides["environment"]})  # type: ignore[attr-defined]
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    argv = overrides["command"]
    assert isinstance(argv, list)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)


def test_dispatcher_runs_the_script_of_its_array_index() -> None:
    scripts = [
        task_script(msg("s[0]", "echo {{ x }} $DAGB_NODE $DAGB_ATTEMPT"),
                    task_values(msg("s[0]", ""))),
        task_script(msg("s[1]", ["printf", "%s|", "{{ x }}", "$HOME"], env={"K": "v'1"}),
                    task_values(msg("s[1]", ""))),
        task_script(msg("s[2]", "echo out; exit 3", workdir="/tmp"), task_values(msg("s", ""))),
    ]
    overrides = container_overrides(scripts)
    first = run_container(overrides, 0)
    assert (first.returncode, first.stdout) == (0, "a b; $(id) s[0] 2\n")  # quoted placeholder
    second = run_container(overrides, 1)
    assert (second.returncode, second.stdout) == (0, "a b; $(id)|$HOME|")  # argv: no shell
    third = run_container(overrides, 2)
    assert (third.returncode, third.stdout) == (3, "out\n")  # the exit code is the job's
    single = run_container(container_overrides(scripts[:1]), None)  # not an array: index 0
    assert single.stdout.startswith("a b; $(id) s[0]")


def test_script_errors() -> None:
    with pytest.raises(JobSpecError, match="needs a command"):
        task_script(msg("a", []), {})
    with pytest.raises(JobSpecError, match=r"unknown placeholder \{\{ y \}\}"):
        task_script(msg("a", "echo {{ y }}"), task_values(msg("a", "")))


def test_chunks_respect_size_and_count() -> None:
    assert chunk_scripts(["a"] * 5, max_bytes=1000, max_size=2) == [[0, 1], [2, 3], [4]]
    assert chunk_scripts(["x" * 60, "y" * 60, "z"], max_bytes=130) == [[0], [1, 2]]
    with pytest.raises(JobSpecError, match="too long"):
        chunk_scripts(["x" * 200], max_bytes=100)


def test_job_outcome() -> None:
    assert job_outcome({"jobId": "j", "status": "RUNNING"}) is None
    assert job_outcome({"jobId": "j", "status": "SUCCEEDED"}) == (Outcome.SUCCEEDED, 0, "")
    failed = {"jobId": "j1", "status": "FAILED", "statusReason": "Essential container exited",
              "container": {"exitCode": 2}}
    assert job_outcome(failed) == (
        Outcome.FAILED, 2, "aws batch job j1 failed: Essential container exited (exit code 2)")
    from_attempt = {"jobId": "j2", "status": "FAILED", "attempts": [
        {"container": {"exitCode": 137, "reason": "OutOfMemoryError: killed"}}]}
    assert job_outcome(from_attempt) == (
        Outcome.FAILED, 137, "aws batch job j2 failed: OutOfMemoryError: killed (exit code 137)")


def test_names_and_backoff() -> None:
    assert job_name("dagb", "r1", "sim[3]") == "dagb-r1-sim_3_"
    assert len(job_name("dagb", "r", "x" * 300)) == 128
    delays = backoff(1.0, 2.0, 5.0)
    assert [next(delays) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_config_from_worker_settings() -> None:
    base = ["--redis-url", "redis://127.0.0.1:1/0"]
    assert aws_batch_config(parse_settings(base, {})[0]) is None  # no queue: not offered
    settings, _ = parse_settings([*base, "--aws-batch-queue", "q1", "--aws-region", "us-west-2",
                                  "--aws-endpoint-url", "http://127.0.0.1:9"],
                                 {"DAGBROKER_AWS_BATCH_JOB_ROLE": "arn:aws:iam::1:role/r"})
    config = aws_batch_config(settings)
    assert config is not None
    assert (config.job_queue, config.job_role_arn) == ("q1", "arn:aws:iam::1:role/r")
    assert config.client_kwargs() == {"region_name": "us-west-2",
                                      "endpoint_url": "http://127.0.0.1:9"}
    with pytest.raises(ValueError):
        AwsBatchConfig(job_queue="q", poll_initial_s=0)
