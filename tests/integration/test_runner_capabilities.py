"""What runners advertise: software lists, and capabilities given at REST registration.

Through the real app and real in-process workers on the test Redis: a worker's --software
reaches its runner hash and runners/status; `runners/register` validates cores, memory and
gpus at the edge (400 naming the field, nothing written) and its record is listed until a
worker started with that id takes it over.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import wait_until
from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.engine.queue_report import live_runners
from broker.keys import Keys

REGISTER = "/api/v1/runners/register"


async def statuses(client: TestClient) -> dict[str, dict[str, Any]]:
    r = await client.get("/api/v1/runners/status")
    assert r.status == 200
    return {info["id"]: info for info in (await r.json())["runners"]}


async def token_ids(client: TestClient) -> list[str]:
    r = await client.get("/api/v1/tokens")
    assert r.status == 200
    body = await r.json()
    return sorted(t["id"] for t in body["tokens"])


async def runner_keys(rds: Any, keys: Keys) -> list[str]:
    return sorted([k async for k in rds.scan_iter(match=f"{keys.prefix}:runner*")])


async def test_worker_software_reaches_the_runner_hash_and_status(
    wk: WorkerHarness, make_client: Any
) -> None:
    settings = await wk.start(software=["openfoam=11", "mfix"])
    rid = settings.runner_id
    assert await wk.rds.hget(wk.keys.runner(rid), "software") == '["openfoam=11", "mfix"]'
    [info] = [r for r in await live_runners(wk.rds, wk.keys) if r["id"] == rid]
    assert info["software"] == ["openfoam=11", "mfix"]
    client: TestClient = await make_client()
    assert (await statuses(client))[rid]["software"] == ["openfoam=11", "mfix"]


async def test_registered_capabilities_show_in_status(
    make_client: Any, rds: Any, keys: Keys
) -> None:
    client: TestClient = await make_client()
    r = await client.post(REGISTER, json={
        "host": "node7.lab", "classes": ["cpu", "gpu"], "slots": 8, "cores": 2.5,
        "memory": "4G", "gpus": 1, "software": ["openfoam=11", "mfix"], "labels": {"rack": "a"},
    })
    assert r.status == 201, await r.text()
    rid = (await r.json())["runner"]
    r = await client.post(REGISTER, json={"host": "node8", "memory": 3000, "cores": 16})
    assert r.status == 201, await r.text()
    other = (await r.json())["runner"]
    listed = await statuses(client)
    assert sorted(listed) == sorted([rid, other])
    info = listed[rid]
    assert {k: info[k] for k in ("host", "classes", "slots", "cores", "memory_mb", "gpus",
                                 "software", "labels", "state", "alive")} == {
        "host": "node7.lab", "classes": ["cpu", "gpu"], "slots": 8, "cores": 2.5,
        "memory_mb": 4096, "gpus": 1, "software": ["openfoam=11", "mfix"],
        "labels": {"rack": "a"}, "state": "registered", "alive": False,
    }
    assert (listed[other]["cores"], listed[other]["memory_mb"], listed[other]["gpus"]) == (
        16.0, 3000, None)  # gpus not given: unknown
    # readable in redis-cli like a worker's hash
    assert await rds.hmget(keys.runner(rid), ["cores", "memory_mb", "gpus"]) == ["2.5", "4096", "1"]


@pytest.mark.parametrize(("body", "field"), [
    ({"cores": 0}, "cores"),
    ({"cores": -2}, "cores"),
    ({"cores": "4"}, "cores"),
    ({"memory": "lots"}, "memory"),
    ({"memory": 0}, "memory"),
    ({"memory": "0.0001M"}, "memory"),
    ({"memory": -5}, "memory"),
    ({"gpus": -1}, "gpus"),
    ({"gpus": 1.5}, "gpus"),
    ({"software": ["open foam"]}, "software"),
    ({"software": ["a,b"]}, "software"),
    ({"bogus": 1}, "bogus"),
], ids=["cores0", "cores-neg", "cores-str", "memory-lots", "memory0", "memory-tiny",
        "memory-neg", "gpus-neg", "gpus-float", "software-space", "software-comma", "unknown"])
async def test_bad_registration_is_a_400_naming_the_field_and_changes_nothing(
    make_client: Any, rds: Any, keys: Keys, body: dict[str, Any], field: str
) -> None:
    client: TestClient = await make_client()
    tokens = await token_ids(client)
    r = await client.post(REGISTER, json={"host": "node9", **body})
    assert r.status == 400, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == "bad_request"
    assert field in err["message"], err
    if field != "bogus":  # an unknown field is named in the message; the path is the object
        assert err["details"]["path"].startswith(f"$.{field}"), err
    assert await runner_keys(rds, keys) == []
    assert await rds.exists(keys.registrations()) == 0
    assert await statuses(client) == {}
    assert await token_ids(client) == tokens  # no runner token was made


async def test_a_worker_takes_over_its_registration(
    wk: WorkerHarness, make_client: Any
) -> None:
    client: TestClient = await make_client()
    r = await client.post(REGISTER, json={"host": "node7", "cores": 64, "memory": "256G",
                                          "gpus": 4, "software": ["old=1"]})
    rid = (await r.json())["runner"]
    assert await wk.rds.smembers(wk.keys.registrations()) == {rid}
    await wk.start(runner_id=rid, cores=2, memory_mb=1024, gpus=0, software=["new=2"])
    [info] = (await statuses(client)).values()  # listed once, as the live worker
    assert (info["id"], info["state"], info["alive"]) == (rid, "active", True)
    assert (info["cores"], info["memory_mb"], info["gpus"], info["software"]) == (
        2.0, 1024, 0, ["new=2"])  # the worker's own settings win
    assert await wk.rds.exists(wk.keys.registrations()) == 0
    assert await wk.stop_all() == [0]

    async def forgotten() -> bool:
        return await statuses(client) == {}

    await wait_until(forgotten, 10.0, what="the stopped worker to leave runners/status")
