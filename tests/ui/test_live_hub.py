"""The live channel's hub against a real Redis: fan-out of `dagb:events`, isolation between
users, and a slow client that is dropped without stalling the others."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis
from helpers import wait_until

from broker.api.auth import User
from broker.api.hub import Hub, Subscriber, to_delta
from broker.keys import Keys

ADMIN = User(id="root", admin=True, scopes=frozenset({"user", "admin"}))
ALICE = User(id="alice", scopes=frozenset({"user"}))
BOB = User(id="bob", scopes=frozenset({"user"}))


async def _collect(sub: Subscriber, out: list[dict[str, Any]]) -> None:
    while (item := await sub.queue.get()) is not None:
        out.append(item)


async def _events(rds: aredis.Redis, keys: Keys, runs: list[str], n: int) -> None:
    pipe = rds.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(keys.events(), {"ts": str(1000 + i), "kind": "task", "run": runs[i % len(runs)],
                                  "node": f"n{i}", "state": "running", "attempt": "1",
                                  "runner": "w1"})
    await pipe.execute()


async def test_fan_out_isolates_users_and_drops_a_slow_client(rds: aredis.Redis,
                                                              keys: Keys) -> None:
    await rds.hset(keys.run("ralice1"), mapping={"owner": "alice"})
    await rds.hset(keys.run("rbob1"), mapping={"owner": "bob"})
    await rds.xadd(keys.events(), {"ts": "1", "kind": "run", "run": "ralice1",
                                   "state": "running"})  # before the hub: never delivered
    hub = Hub(rds, keys, queue_size=50, block_ms=100)
    stop = asyncio.Event()
    reader = asyncio.create_task(hub.run(stop))
    await asyncio.wait_for(hub.ready.wait(), 10)
    subs = {u.id: hub.subscribe(u) for u in (ADMIN, ALICE, BOB)}
    slow = hub.subscribe(ALICE)  # never reads its queue
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in subs}
    readers = [asyncio.create_task(_collect(s, got[k])) for k, s in subs.items()]
    try:
        await _events(rds, keys, ["ralice1", "rbob1"], 400)

        async def delivered() -> bool:
            return len(got["root"]) == 400 and len(got["alice"]) == 200 and len(got["bob"]) == 200

        await wait_until(delivered, timeout_s=20, what="every delta to reach the fast clients")
        assert [d["node"] for d in got["root"]] == [f"n{i}" for i in range(400)]  # in order
        assert {d["run"] for d in got["alice"]} == {"ralice1"}
        assert {d["run"] for d in got["bob"]} == {"rbob1"}
        assert got["alice"][0] == {"type": "task", "run": "ralice1", "node": "n0",
                                   "state": "running", "attempt": 1, "ts": 1000, "runner": "w1"}
        assert slow.dropped and slow.queue.qsize() == 1 and slow.queue.get_nowait() is None
        assert not any(s.dropped for s in subs.values())
        hub.unsubscribe(slow)
        await _events(rds, keys, ["rbob1"], 10)  # the hub goes on after the drop

        async def more() -> bool:
            return len(got["bob"]) == 210

        await wait_until(more, timeout_s=10, what="deltas after the drop")
        assert len(got["alice"]) == 200
    finally:
        stop.set()
        reader.cancel()
        for t in readers:
            t.cancel()
        await asyncio.gather(reader, *readers, return_exceptions=True)


async def test_owner_lookups_are_cached_and_unknown_runs_reach_admins_only(
    rds: aredis.Redis, keys: Keys
) -> None:
    await rds.hset(keys.run("rcache1"), mapping={"owner": "alice"})
    hub = Hub(rds, keys)
    alice, admin = hub.subscribe(ALICE), hub.subscribe(ADMIN)
    await hub.publish([{"type": "run", "run": "rcache1", "state": "running", "ts": 1},
                       {"type": "run", "run": "rgone1", "state": "running", "ts": 2}])
    await rds.hset(keys.run("rcache1"), "owner", "mallory")  # owners never change; cached
    await hub.publish([{"type": "run", "run": "rcache1", "state": "succeeded", "ts": 3}])
    assert [alice.queue.get_nowait()["ts"] for _ in range(alice.queue.qsize())] == [1, 3]
    assert admin.queue.qsize() == 3


async def test_runner_deltas_when_runners_come_and_go(rds: aredis.Redis, keys: Keys) -> None:
    hub = Hub(rds, keys, runner_poll_s=0)
    sub = hub.subscribe(BOB)
    await rds.sadd(keys.runners(), "w1")
    await rds.hset(keys.runner("w1"), mapping={"state": "active", "busy": "0"})
    await hub.poll_runners()
    await hub.poll_runners()  # nothing changed: nothing sent
    await rds.hset(keys.runner("w1"), "state", "draining")
    await hub.poll_runners()
    await rds.srem(keys.runners(), "w1")
    await hub.poll_runners()
    states = [sub.queue.get_nowait()["state"] for _ in range(sub.queue.qsize())]
    assert states == ["active", "draining", "gone"]


def test_to_delta_keeps_only_what_the_ui_needs() -> None:
    assert to_delta({"ts": "5", "kind": "run", "run": "r1", "state": "failed",
                     "reason": "boom"}) == {"type": "run", "run": "r1", "state": "failed",
                                            "ts": 5, "reason": "boom"}
    assert to_delta({"ts": "5", "kind": "other", "run": "r1"}) is None
    assert to_delta({"ts": "5", "kind": "task"}) is None
