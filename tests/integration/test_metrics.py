"""Prometheus /metrics: who may read it, and figures that match a real broker + worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from worker.config import WorkerSettings
from worker.main import run_worker

# With one slot: a → b (priority 10) run first, then `slow` holds the slot, `late` waits.
WF = {
    "name": "metered",
    "nodes": {
        "a": {"executor": "noop", "priority": 10},
        "b": {"executor": "noop", "priority": 10, "after": ["a"]},
        "slow": {"command": "sleep 60"},
        "late": {"executor": "noop", "after": ["b"]},
    },
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def worker(
    make_client: Any, redis_server: Any, prefix: str, tmp_path: Path
) -> AsyncIterator[Any]:
    """The app's client plus one real in-process worker (cpu, 1 slot) on the same Redis."""
    client = await make_client()
    settings = WorkerSettings(
        redis_url=redis_server.url, prefix=prefix, runner_id="w1", classes=["cpu"], slots=1,
        data_dir=str(tmp_path / "worker"), heartbeat_interval_s=0.5, heartbeat_ttl_s=5.0,
        block_ms=200, grace_period_s=1.0, kill_grace_s=1.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    yield client
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 15)


async def test_metrics_needs_the_metrics_scope_or_admin(make_client: Any) -> None:
    client = await make_client()
    r = await client.post("/api/v1/tokens", json={"name": "prom", "scopes": ["metrics"]})
    prom = {"Authorization": f"Bearer {(await r.json())['token']}"}
    r = await client.post("/api/v1/users", json={"id": "alice"})
    alice = {"Authorization": f"Bearer {(await r.json())['token']}"}
    assert (await client.get("/metrics", headers={"Authorization": ""})).status == 401
    assert (await client.get("/metrics", headers=alice)).status == 403
    assert (await client.get("/api/v1/runs", headers=prom)).status == 403
    for headers in (prom, None):  # the metrics token, then the admin's
        r = await client.get("/metrics", headers=headers)
        assert r.status == 200 and r.content_type == "text/plain"
        assert "dagbroker_runners_up" in await r.text()


async def test_metrics_follow_a_run(worker: Any) -> None:
    client = worker
    assert (await client.post("/api/v1/workflow/publish", json=WF)).status == 201
    r = await client.post("/api/v1/workflow/execute", json={"name": "metered"})
    run = (await r.json())["run"]

    async def scrape() -> Samples:
        r = await client.get("/metrics")
        assert r.status == 200
        return parse(await r.text())

    async def settled() -> Samples | None:
        m = await scrape()
        running = value(m, "dagbroker_tasks", state="running")
        # the histograms fold the events stream at each scrape, after the counters were read,
        # so a scrape can see `slow` running before its start event is folded in: wait for both
        folded = value(m, "dagbroker_dispatch_latency_seconds_count")
        ok = running == 1 and value(m, "dagbroker_tasks", state="ready") == 1 and folded
        return m if ok else None

    m = await wait_until(settled, 30, what="a, b done; slow running; late ready")
    assert value(m, "dagbroker_tasks", state="succeeded") == 2
    assert value(m, "dagbroker_class_tasks", **{"class": "cpu", "state": "ready"}) == 1
    assert value(m, "dagbroker_class_tasks", **{"class": "cpu", "state": "delivered"}) == 1
    assert value(m, "dagbroker_class_tasks", **{"class": "cpu", "state": "queued"}) == 0
    assert value(m, "dagbroker_queue_ready", **{"class": "cpu"}) == 1
    assert value(m, "dagbroker_queue_in_flight", **{"class": "cpu"}) == 1
    assert value(m, "dagbroker_queue_capacity", **{"class": "cpu"}) == 1
    assert value(m, "dagbroker_stream_pending", stream="q:cpu") == 1
    assert (value(m, "dagbroker_stream_pending_max_idle_seconds", stream="q:cpu") or 0) >= 0
    assert value(m, "dagbroker_stream_pending", stream="done") == 0
    assert value(m, "dagbroker_runs_active") == 1
    assert value(m, "dagbroker_runners_up") == 1
    assert value(m, "dagbroker_runners", state="active") == 1
    assert (value(m, "dagbroker_completions_applied_total") or 0) >= 2
    # Only `slow` was started by a worker (noop tasks complete without a start);
    # a, b and slow were dispatched from the ready set.
    assert value(m, "dagbroker_dispatch_latency_seconds_count") == 1
    assert value(m, "dagbroker_dispatch_latency_seconds_bucket", le="+Inf") == 1
    assert value(m, "dagbroker_queue_wait_seconds_count") == 3
    # A second scrape with no new events counts nothing twice.
    again = await scrape()
    assert value(again, "dagbroker_dispatch_latency_seconds_count") == 1
    assert value(again, "dagbroker_queue_wait_seconds_count") == 3
    assert (await client.post("/api/v1/workflow/cancel", json={"run": run})).status == 200
