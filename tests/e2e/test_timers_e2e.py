"""Timers with real `dagbroker serve` processes: they survive a restart and fire once with two
brokers sharing one Redis and one data directory."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from helpers import wait_until

from e2e.cluster import Cluster, api
from e2e.test_cli import dagbroker

WF = {"name": "tick", "nodes": {"a": {"executor": "noop"}}}
EXECUTE = {"execute": {"name": "tick"}}


async def timers(url: str) -> list[dict[str, Any]]:
    return list((await api(url, "GET", "/api/v1/timers/status", all="1"))["timers"])


async def runs(url: str) -> list[dict[str, Any]]:
    return list((await api(url, "GET", "/api/v1/runs"))["runs"])


async def test_a_timer_fires_after_a_restart(cluster: Cluster) -> None:
    broker, url = cluster.start_broker()
    await api(url, "POST", "/api/v1/workflow/publish", WF)
    once = (await api(url, "POST", "/api/v1/timers/start",
                      {"action": EXECUTE, "after_s": 4}))["timer"]
    cron = (await api(url, "POST", "/api/v1/timers/start",
                      {"action": EXECUTE, "cron": "0 0 1 1 *"}))["timer"]
    assert broker.term() == 0
    db = sqlite3.connect(cluster.data_dir / "dagbroker.db")
    assert db.execute("SELECT fired FROM timers WHERE id = ?", (once["id"],)).fetchone() == (0,)
    db.close()

    async def due_passed() -> bool:  # the broker is down while the timer comes due
        return time.time() * 1000 > once["next_fire_at_ms"] + 200

    await wait_until(due_passed, timeout_s=10, interval_s=0.1, what="the due time")
    _, url = cluster.start_broker()

    async def fired() -> dict[str, dict[str, Any]] | None:
        rows = {t["id"]: t for t in await timers(url)}
        row = rows[once["id"]]
        return rows if row["state"] == "done" and row["last_run"] else None

    rows = await wait_until(fired, timeout_s=15, what="the timer to fire after the restart")
    assert rows[once["id"]]["fired"] == 1
    assert [r["id"] for r in await runs(url)] == [rows[once["id"]]["last_run"]]
    assert rows[cron["id"]]["next_fire_at_ms"] == cron["next_fire_at_ms"]  # kept, not fired
    assert rows[cron["id"]]["state"] == "active"


async def test_two_brokers_fire_each_timer_once(cluster: Cluster) -> None:
    _, url_a = cluster.start_broker()
    _, url_b = cluster.start_broker()
    await api(url_a, "POST", "/api/v1/workflow/publish", WF)
    ids = []
    for i in range(5):
        url = (url_a, url_b)[i % 2]
        out = await api(url, "POST", "/api/v1/timers/start",
                        {"action": EXECUTE, "after_s": 0.2 * i})
        ids.append(out["timer"]["id"])
    # the CLI verbs, against the other broker
    cli = dagbroker("timers", "start", "--after", "0.5", "--execute", "tick", "--json",
                    url=url_b, env=cluster.env)
    assert cli.returncode == 0, cli.stderr
    ids.append(json.loads(cli.stdout)["timer"]["id"])
    pushed = dagbroker("events", "push", "k", "--payload", "[1]", url=url_a, env=cluster.env)
    assert pushed.returncode == 0 and "0 waiting task(s)" in pushed.stdout, pushed.stderr

    async def all_fired() -> list[dict[str, Any]] | None:
        rows = await timers(url_b)
        return rows if all(t["state"] == "done" and t["last_run"] for t in rows) else None

    rows = await wait_until(all_fired, timeout_s=20, what="every timer to fire")
    assert sorted(t["id"] for t in rows) == sorted(ids)
    assert {t["fired"] for t in rows} == {1}
    started = sorted(r["id"] for r in await runs(url_a))
    assert started == sorted(t["last_run"] for t in rows)  # one run per timer, no more
