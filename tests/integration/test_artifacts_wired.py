"""Needs the ExecContext wiring (worker/service.py): workers pointed at a store by --artifacts,
and aws_batch enabled by --aws-batch-queue, as real processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis.asyncio as aredis
from e2e.cluster import Cluster, publish_and_run, wait_run
from peers.moto_server import REGION, MotoServer, aws_fixture, moto_fixture  # noqa: F401

from broker.artifacts import LocalStore, store_from_url
from broker.keys import Keys

WORKFLOW = {
    "name": "artifacts-wired",
    "nodes": {
        "make": {"command": "echo shared > out.txt", "outputs": ["out.txt"],
                 "resources": {"class": "a"}},
        "use": {"after": ["make"], "inputs": ["out.txt"], "resources": {"class": "b"},
                "command": "printf '\"%s\"' \"$(cat out.txt)\" > \"$DAGB_RESULT\""},
    },
}


@pytest.fixture
def cluster(redis_server: Any, prefix: str, tmp_path: Path, child_env: dict[str, str]
            ) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, prefix, tmp_path, child_env)
    yield c
    c.stop_all()


async def test_two_workers_share_a_file_store(cluster: Cluster, rds: aredis.Redis,
                                              keys: Keys) -> None:
    _, url = cluster.start_broker()
    shared = cluster.tmp / "shared-store"
    cluster.start_worker("--artifacts", shared.as_uri(), name="wa", classes="a")
    cluster.start_worker("--artifacts", shared.as_uri(), name="wb", classes="b")
    run = await publish_and_run(url, WORKFLOW)
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", cluster.logs()
    rec = json.loads(await rds.hget(keys.artifacts(run), "make/out.txt"))
    assert await LocalStore(shared).exists(rec["sha256"])


async def test_worker_with_an_s3_store(cluster: Cluster, aws: MotoServer, rds: aredis.Redis,
                                       keys: Keys) -> None:
    boto3.client("s3", **aws.client_kwargs()).create_bucket(Bucket="runs")
    cluster.env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    _, url = cluster.start_broker()
    for name, cls in (("wa", "a"), ("wb", "b")):
        cluster.start_worker("--artifacts", "s3://runs/dagb", "--s3-endpoint-url", aws.url,
                             "--aws-region", REGION, name=name, classes=cls)
    run = await publish_and_run(url, WORKFLOW)
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", cluster.logs()
    assert {t["id"]: t for t in st["tasks"]}["use"]["result"] == "shared"
    rec = json.loads(await rds.hget(keys.artifacts(run), "make/out.txt"))
    store = store_from_url("s3://runs/dagb", endpoint_url=aws.url, region=REGION,
                           client_options=aws.credentials())
    try:
        assert await store.size(rec["sha256"]) == len("shared\n")
    finally:
        await store.aclose()


async def test_worker_runs_aws_batch_tasks(cluster: Cluster, aws: MotoServer) -> None:
    kw = aws.client_kwargs()
    iam, batch = boto3.client("iam", **kw), boto3.client("batch", **kw)
    role = iam.create_role(RoleName="svc", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ce = batch.create_compute_environment(computeEnvironmentName="ce-wired", type="UNMANAGED",
                                          state="ENABLED", serviceRole=role)
    batch.create_job_queue(jobQueueName="wired", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment":
                                                     ce["computeEnvironmentArn"]}])
    cluster.env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    _, url = cluster.start_broker()
    cluster.start_worker("--aws-batch-queue", "wired", "--aws-endpoint-url", aws.url,
                         "--aws-region", REGION, name="wc", classes="cloud")
    wf = {"name": "cloud", "defaults": {"executor": "aws_batch",
                                        "resources": {"class": "cloud"}},
          "nodes": {"one": {"image": "busybox", "command": "echo 1"},
                    "many": {"image": "busybox", "command": "echo {{ i }}",
                             "matrix": {"i": [1, 2, 3]}, "after": ["one"]}}}
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", cluster.logs()
