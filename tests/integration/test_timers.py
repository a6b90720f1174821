"""Timers through the real app: fire after a delay, cron times, cancel, push, claim once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from helpers import wait_until
from test_events_api import WAITS, Api

from broker.api.appkeys import ENGINE, POLICY, REVISIONS
from broker.cli.events_client import format_timer
from broker.engine.events import Launcher
from broker.engine.timers import TimerService, TimerStore
from broker.history.db import open_db
from broker.keys import Keys

NOOP = {"name": "tick", "params": {"n": 0}, "nodes": {"a": {"executor": "noop"}}}
START = "/api/v1/timers/start"


@pytest.fixture
async def api(make_client: Any) -> Api:
    client = await make_client()
    del client.session.headers["Authorization"]
    a = Api(client)
    await a.user("alice")
    await a.user("bob")
    await a.call("alice", "POST", "/api/v1/workflow/publish", NOOP, status=201)
    return a


async def timers(api: Api, who: str = "alice", all_: bool = True) -> list[dict[str, Any]]:
    out = await api.call(who, "GET", f"/api/v1/timers/status?all={int(all_)}")
    return list(out["timers"])


async def test_a_timer_starts_a_run_after_its_delay(api: Api, rds: aredis.Redis, keys: Keys
                                                    ) -> None:
    action = {"execute": {"name": "tick", "params": {"n": 5}}}
    out = await api.call("alice", "POST", START, {"action": action, "after_s": 0.3,
                                                  "name": "soon"}, status=201)
    t = out["timer"]
    assert (t["state"], t["kind"], t["name"], t["fired"]) == ("active", "after", "soon", 0)
    assert abs(t["next_fire_at_ms"] - (time.time() * 1000 + 300)) < 2000

    async def fired() -> dict[str, Any] | None:
        (row,) = await timers(api)
        return row if row["state"] == "done" and row["last_run"] else None

    row = await wait_until(fired, timeout_s=10, what="the timer to fire")
    assert (row["fired"], row["next_fire_at"], row["last_error"]) == (1, None, None)
    run = row["last_run"]
    st = await api.call("alice", "GET", f"/api/v1/runs/{run}")
    assert (st["run"]["owner"], st["run"]["params"]) == ("alice", {"n": 5})
    assert await rds.hget(keys.run(run), "trigger") == f"timer:{t['id']}"
    assert await timers(api, all_=False) == []  # done: listed only with all=1


async def test_cron_and_at_times_and_bad_requests(api: Api) -> None:
    act = {"execute": {"name": "tick"}}
    before = time.time() * 1000
    t = (await api.call("alice", "POST", START, {"action": act, "cron": "*/5 * * * *"},
                        status=201))["timer"]
    ms = t["next_fire_at_ms"]
    assert ms % 300_000 == 0 and before < ms <= before + 300_000
    assert t["next_fire_at"].endswith(":00.000Z") and t["kind"] == "cron"
    t = (await api.call("alice", "POST", START, {"action": act, "at": "2031-02-03T04:05:06Z"},
                        status=201))["timer"]
    at = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert (t["next_fire_at"], t["next_fire_at_ms"]) == ("2031-02-03T04:05:06.000Z",
                                                         int(at.timestamp() * 1000))
    for body, status in [
        ({"action": act, "cron": "every tuesday"}, 400),
        ({"action": act, "cron": "* * * * * *"}, 400),
        ({"action": act, "after_s": 1, "cron": "* * * * *"}, 400),
        ({"action": act}, 400),
        ({"action": act, "at": "tomorrow"}, 400),
        ({"action": {**act, "push": {"key": "k"}}, "after_s": 1}, 400),
        ({"action": {"execute": {"name": "missing"}}, "after_s": 1}, 404),
        ({"action": {"execute": {"name": "tick", "params": {"zz": 1}}}, "after_s": 1}, 422),
    ]:
        await api.call("alice", "POST", START, body, status=status)
    # bob sees none of alice's timers and cannot start her workflow
    assert await timers(api, "bob") == []
    await api.call("bob", "POST", START, {"action": act, "after_s": 1}, status=404)


async def test_cancel(api: Api) -> None:
    act = {"execute": {"name": "tick"}}
    a = (await api.call("alice", "POST", START, {"action": act, "after_s": 3600},
                        status=201))["timer"]
    b = (await api.call("alice", "POST", START, {"action": act, "after_s": 3600},
                        status=201))["timer"]
    await api.call("bob", "POST", "/api/v1/timers/cancel", {"id": a["id"]}, status=404)
    out = await api.call("alice", "POST", "/api/v1/timers/cancel", {"id": a["id"]})
    assert (out["timer"]["state"], out["timer"]["next_fire_at_ms"]) == ("cancelled", None)
    assert format_timer(out["timer"]).startswith(f"{a['id']}  cancelled  after ")  # the CLI's
    await api.call("alice", "DELETE", f"/api/v1/timers/{a['id']}", status=409)
    await api.call("alice", "DELETE", f"/api/v1/timers/{b['id']}")
    await api.call("alice", "DELETE", "/api/v1/timers/tmnothing", status=404)
    assert await timers(api, all_=False) == []
    assert {t["state"] for t in await timers(api)} == {"cancelled"}


async def test_a_push_timer_completes_a_waiting_task(api: Api) -> None:
    run = await api.run("alice", WAITS)
    await api.call("alice", "POST", START, {
        "action": {"push": {"key": "go", "payload": {"from": "timer"}}}, "after_s": 0},
        status=201)

    async def done() -> dict[str, Any] | None:
        t = await api.task_state("alice", run, "approve")
        return t if t["state"] == "succeeded" else None

    t = await wait_until(done, timeout_s=10, what="the pushed key to reach the task")
    assert t["result"] == {"from": "timer"}


async def test_a_fire_is_claimed_once_without_relying_on_the_lock(api: Api, tmp_path: Path
                                                                  ) -> None:
    """Two services on two SQLite connections fire the same due time at once: one wins."""
    app = api.client.app
    out = await api.call("alice", "POST", START,
                         {"action": {"execute": {"name": "tick"}}, "after_s": 3600}, status=201)
    async with open_db(tmp_path / "broker" / "dagbroker.db") as db1, \
            open_db(tmp_path / "broker" / "dagbroker.db") as db2:
        services = []
        for db in (db1, db2):
            svc = TimerService(app[ENGINE])
            svc.store = TimerStore(db)
            svc.launcher = Launcher(app[ENGINE], app[REVISIONS], app[POLICY])
            services.append(svc)
        timer = await services[0].store.get(out["timer"]["id"])  # type: ignore[union-attr]
        assert timer is not None
        now = int(time.time() * 1000)
        wins = await asyncio.gather(*(s.fire(timer, now) for s in services))
    assert sorted(wins) == [False, True]
    runs = (await api.call("alice", "GET", "/api/v1/runs"))["runs"]
    (row,) = await timers(api)
    assert (len(runs), row["fired"], row["state"], row["last_run"]) == (
        1, 1, "done", runs[0]["id"])


async def test_a_fire_claimed_by_a_broker_that_died_is_finished_with_its_run_id(
    api: Api, tmp_path: Path
) -> None:
    out = await api.call("alice", "POST", START,
                         {"action": {"execute": {"name": "tick"}}, "after_s": 3600}, status=201)
    async with open_db(tmp_path / "broker" / "dagbroker.db") as db:
        store = TimerStore(db)
        timer = await store.get(out["timer"]["id"])
        assert timer is not None
        long_ago = int(time.time() * 1000) - 120_000  # claimed, then the broker died
        assert await store.claim(timer, None, "rdied0000abcde", long_ago)

    async def finished() -> dict[str, Any] | None:
        (row,) = await timers(api)
        return row if row["last_run"] else None

    row = await wait_until(finished, timeout_s=10, what="the leader to finish the fire")
    assert (row["last_run"], row["fired"], row["state"]) == ("rdied0000abcde", 1, "done")
    runs = (await api.call("alice", "GET", "/api/v1/runs"))["runs"]
    assert [r["id"] for r in runs] == ["rdied0000abcde"]
