"""Provenance of finished runs: the broker app, a real in-process worker, the git repository."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import wait_until

from broker.api.appkeys import ENGINE, SETTINGS
from broker.engine.janitor import Janitor
from broker.engine.provenance_loop import GROUP, ProvenanceLoop
from broker.provenance_store import ProvenanceStore
from worker.config import WorkerSettings
from worker.main import run_worker

WF = {
    "name": "prov",
    "params": {"n": 3},
    "nodes": {
        "make": {"command": "printf data-%s {{n}} > out.txt && "
                            "printf '{\"n\": %s}' {{n}} > \"$DAGB_RESULT\"",
                 "outputs": ["out.txt"]},
        "use": {"after": ["make"], "matrix": {"k": [1, 2]}, "command": "echo {{k}}"},
    },
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Caller:
    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, **query: Any
                   ) -> tuple[int, Any]:
        r = await self.client.request(method, f"/api/v1/{path}", json=body,
                                      params=query or None, headers=self.headers)
        return r.status, await r.json()

    async def manifest(self, run: str) -> Any:
        async def ready() -> Any:
            status, body = await self.call("GET", f"runs/{run}/provenance")
            return body if status == 200 else None

        return await wait_until(ready, 30, what=f"the provenance of {run}")


@pytest.fixture
async def app(make_client: Any, tmp_path: Path) -> AsyncIterator[dict[str, Caller]]:
    client = await make_client()
    callers = {"admin": Caller(client, client.token)}
    for uid in ("alice", "bob"):
        r = await client.post("/api/v1/users", json={"id": uid})
        callers[uid] = Caller(client, (await r.json())["token"])
    settings = client.app[SETTINGS]
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(WorkerSettings(
        redis_url=settings.redis_url or "", prefix=settings.prefix, slots=2,
        data_dir=str(tmp_path / "worker"), heartbeat_interval_s=0.5, heartbeat_ttl_s=5.0,
        block_ms=200, grace_period_s=1.0, kill_grace_s=1.0,
    ), stop))
    yield callers
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(worker, 15)


async def test_manifest_lookup_and_rerun(app: dict[str, Caller]) -> None:
    alice, bob = app["alice"], app["bob"]
    _, pub = await alice.call("POST", "workflow/publish", WF)
    status, ex = await alice.call("POST", "workflow/execute", {"name": "prov", "params": {"n": 5}})
    assert status == 201, ex
    m = await alice.manifest(ex["run"])

    assert (m["run"], m["workflow"], m["owner"], m["revision"], m["state"]) == (
        ex["run"], "prov", "alice", pub["revision"], "succeeded")
    assert m["params"] == {"n": 5} and m["finished_at"] >= m["started_at"] > 0
    make = m["tasks"]["make"]
    result_hash = sha(b'{"n":5}')  # canonical JSON of the result
    assert make["result_sha256"] == result_hash and make["executor"] == "shell"
    assert (make["state"], make["attempts"], make["exit_code"], make["revision"]) == (
        "succeeded", 1, 0, pub["revision"])
    assert make["runner"] and make["upstream"] == {} and make["parameters"] == {}
    out = make["outputs"]["out.txt"]
    assert out["sha256"] == sha(b"data-5") and out["size"] == 6
    use = m["tasks"]["use[0]"]
    assert use["parameters"] == {"k": 1} and use["upstream"] == {"make": result_hash}
    assert set(m["tasks"]) == {"make", "use[0]", "use[1]"}

    # which run produced this file / this result
    status, found = await alice.call("GET", "provenance", sha256=sha(b"data-5"))
    assert status == 200
    assert found["produced_by"] == [{
        "run": ex["run"], "task": "make", "kind": "output", "name": "out.txt",
        "workflow": "prov", "owner": "alice", "revision": pub["revision"],
        "finished_at": m["finished_at"]}]
    _, found = await alice.call("GET", "provenance", sha256=result_hash)
    assert found["produced_by"][0]["kind"] == "result"

    # invisible to another user, like a missing one
    status, err = await bob.call("GET", "provenance", sha256=sha(b"data-5"))
    assert status == 404
    s1, e1 = await bob.call("GET", f"runs/{ex['run']}/provenance")
    s2, e2 = await bob.call("GET", "runs/rnosuch000/provenance")
    assert s1 == s2 == 404
    assert e1["error"]["message"].replace(ex["run"], "X") == \
        e2["error"]["message"].replace("rnosuch000", "X")
    assert (await bob.call("POST", f"runs/{ex['run']}/rerun"))[0] == 404
    status, _ = await app["admin"].call("GET", f"runs/{ex['run']}/provenance")
    assert status == 200

    # re-run: a new run of the recorded revision with the recorded parameters
    status, again = await alice.call("POST", f"runs/{ex['run']}/rerun")
    assert status == 201 and again["revision"] == pub["revision"] and again["tasks"] == 3
    m2 = await alice.manifest(again["run"])
    assert m2["params"] == {"n": 5}
    assert m2["tasks"]["make"]["outputs"]["out.txt"]["sha256"] == sha(b"data-5")
    _, found = await alice.call("GET", "provenance", sha256=sha(b"data-5"))
    assert [e["run"] for e in found["produced_by"]] == [again["run"], ex["run"]]


async def test_redelivery_is_idempotent_and_janitor_writes_first(
    app: dict[str, Caller], tmp_path: Path
) -> None:
    alice = app["alice"]
    client = alice.client
    engine = client.app[ENGINE]
    await alice.call("POST", "workflow/publish", {"name": "idle", "nodes": {
        "wait": {"executor": "event", "wait_for": "never.comes"}}})
    _, ex = await alice.call("POST", "workflow/execute", {"name": "idle"})
    await alice.call("POST", "workflow/cancel", {"run": ex["run"]})
    first = await alice.manifest(ex["run"])
    assert first["state"] == "cancelled"

    async def recorded() -> Any:  # the run hash gets the commit right after the git write
        return await engine.redis.hget(engine.keys.run(ex["run"]), "provenance")

    assert await wait_until(recorded, 10, what="the commit on the run") == first["commit"]

    # a restarted broker reading the whole stream again writes nothing new
    repo = engine.settings.data_path / "workflows.git"
    await engine.redis.xgroup_setid(engine.keys.events(), GROUP, "0")
    again = ProvenanceLoop(engine.redis, engine.keys, ProvenanceStore(repo), "restarted",
                           block_ms=10)
    while await again.read_once():
        pass
    assert again.written == 0
    assert (await alice.manifest(ex["run"]))["commit"] == first["commit"]
    await again.close()

    # the janitor expires a run only after its provenance exists (here: a fresh repository
    # that has none yet, as when the run's events were trimmed before they were read)
    async def archived() -> bool:
        return bool(await engine.redis.hget(engine.keys.run(ex["run"]), "archived"))

    await wait_until(archived, 30, what="the run to be archived")
    other = ProvenanceLoop(engine.redis, engine.keys, ProvenanceStore(tmp_path / "other.git"),
                           "janitor-test")
    janitor = Janitor(engine.redis, engine.keys, engine.scripts, retention_s=0,
                      expand_timeout_s=300, owner="t", before_expire=other.ensure_manifest)
    assert await janitor.expire_finished_runs() >= 1
    assert not await engine.redis.exists(engine.keys.run(ex["run"]))
    kept = await other.store.read(ex["run"])
    assert kept is not None and kept["state"] == "cancelled" and other.written == 1
    await other.close()
