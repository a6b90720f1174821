"""Artifacts end to end: a real broker and a real worker process; one task's declared output
is staged into its dependent's workdir through the worker's artifact store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from e2e.cluster import Cluster, publish_and_run, wait_run

from broker.artifacts import LocalStore
from broker.keys import Keys

WORKFLOW = {
    "name": "artifacts-e2e",
    "nodes": {
        "make": {"command": "mkdir -p res && echo hello-artifact > out.txt && echo 7 > res/n.csv",
                 "outputs": ["out.txt", "res/*.csv"]},
        "use": {"after": ["make"], "inputs": ["out.txt", "res/n.csv"],
                "command": "printf '{\"text\": \"%s\", \"n\": %s}' \"$(cat out.txt)\" "
                           "\"$(cat res/n.csv)\" > \"$DAGB_RESULT\""},
    },
}


@pytest.fixture
def cluster(redis_server: Any, prefix: str, tmp_path: Path, child_env: dict[str, str]
            ) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, prefix, tmp_path, child_env)
    yield c
    c.stop_all()


async def test_output_of_one_task_is_the_input_of_the_next(
    cluster: Cluster, rds: aredis.Redis, keys: Keys
) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    run = await publish_and_run(url, WORKFLOW)
    st = await wait_run(url, run, cluster=cluster)
    tasks = {t["id"]: t for t in st["tasks"]}
    assert st["run"]["state"] == "succeeded", (st, cluster.logs())
    assert tasks["use"]["result"] == {"text": "hello-artifact", "n": 7}
    index = {k: json.loads(v) for k, v in (await rds.hgetall(keys.artifacts(run))).items()}
    assert sorted(index) == ["make/out.txt", "make/res/n.csv"]
    assert index["make/out.txt"]["size"] == len("hello-artifact\n")
    store = LocalStore(cluster.tmp / "w1" / "artifacts")  # the worker's default store
    dest = cluster.tmp / "fetched.txt"
    await store.get_file(index["make/out.txt"]["sha256"], dest)
    assert dest.read_text() == "hello-artifact\n"
