"""Liveness and readiness: public probes; ready = Redis answers and every engine loop is fresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from conftest import RedisServer
from helpers import wait_until

from broker.api.health import loop_state
from broker.engine.loops import LoopBeat

LOOPS = {"dispatch", "runners", "claim", "janitor", "presence"}


async def probe(client: Any) -> tuple[int, dict[str, Any]]:
    r = await client.get("/api/v1/health/ready", headers={"Authorization": ""})
    return r.status, await r.json()


def test_a_loop_is_stale_after_its_grace_and_three_intervals() -> None:
    beat = LoopBeat(interval_s=2.0)
    now = beat.started_at
    assert loop_state(beat, now + 10, grace_s=5).fresh  # none yet, but just started
    assert not loop_state(beat, now + 12, grace_s=5).fresh  # never succeeded: 12 > 5 + 6
    beat.last_ok_at, beat.failures = now + 11, 3
    st = loop_state(beat, now + 12, grace_s=5)
    assert st.fresh and st.age_s == 1.0 and st.failures == 3 and st.stale_after_s == 11


async def test_probes_need_no_token_and_report_ready(make_client: Any) -> None:
    client = await make_client()
    r = await client.get("/api/v1/health/live", headers={"Authorization": ""})
    assert r.status == 200 and await r.json() == {"status": "ok"}
    status, body = await probe(client)
    assert status == 200, body
    assert body["status"] == "ready" and body["reasons"] == [] and body["redis"] is True
    assert LOOPS <= set(body["loops"]) and all(v["fresh"] for v in body["loops"].values())


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it pauses and restarts it); stopped after the app."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


async def test_unready_when_loops_stall_or_redis_is_gone(
    own_redis: RedisServer, make_client: Any
) -> None:
    server = own_redis
    admin = aredis.Redis(port=server.port)
    client = await make_client(redis_url=server.url, health_stale_s=1.5, done_block_ms=200)
    try:
        await wait_until(lambda: _ready(client), 10, what="ready at start")
        # Writes (and scripts) block while reads still answer: the loops go stale.
        await admin.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        status, body = await wait_until(
            lambda: _unready(client, "loop dispatch: stale"), 10, what="a stale dispatch loop"
        )
        assert body["redis"] is True
        await admin.execute_command("CLIENT", "UNPAUSE")
        await wait_until(lambda: _ready(client), 15, what="ready after the pause")
        # Redis gone: the PING fails; back (its AOF restores the groups): ready again.
        server.stop()
        status, body = await wait_until(
            lambda: _unready(client, "redis: no answer to PING"), 10, what="redis down"
        )
        server.start()
        await wait_until(lambda: _ready(client), 20, what="ready after the restart")
    finally:
        if server.proc is not None and server.proc.poll() is not None:
            server.start()  # the app's cleanup talks to Redis
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()


async def _ready(client: Any) -> bool:
    return (await probe(client))[0] == 200


async def _unready(client: Any, reason: str) -> tuple[int, dict[str, Any]] | None:
    """(503, body) once a reason starts with `reason`."""
    status, body = await probe(client)
    found = status == 503 and any(r.startswith(reason) for r in body["reasons"])
    return (status, body) if found else None
