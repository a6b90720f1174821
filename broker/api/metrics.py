"""`GET /metrics`: Prometheus text exposition (token with the `metrics` scope, or an admin).

Gauges are read from Redis at each scrape (a few pipelined round trips; cost grows with the
number of classes, active runs and runners, not with tasks):

    dagbroker_tasks{state}                      tasks of active runs, from the run counters
    dagbroker_class_tasks{class,state}          ready (ready set), queued (in the class
                                                stream, not read yet), delivered (read by a
                                                worker, not completed: running or starting)
    dagbroker_queue_ready{class}                ready tasks waiting for a free slot
    dagbroker_queue_in_flight{class}            dispatched tasks not completed (stream length)
    dagbroker_queue_capacity{class}             free-slot budget of live runners
    dagbroker_stream_length{stream}             entries in dagb:done and each dagb:q:{class}
    dagbroker_stream_pending{stream}            delivered, unacknowledged entries (the PEL)
    dagbroker_stream_pending_max_idle_seconds{stream}  longest idle time in the PEL
    dagbroker_delayed_tasks                     retries and timers waiting for their time
    dagbroker_runs_active                       runs expanding or running
    dagbroker_runners_up / dagbroker_runners{state}  runners with a live heartbeat
    dagbroker_completions_{applied,ignored}_total  completions this broker applied / ignored
    dagbroker_dispatch_latency_seconds, dagbroker_queue_wait_seconds  (metrics_latency)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

import broker
from broker.api.apidoc import TEXT, api_doc
from broker.api.appkeys import ENGINE
from broker.api.auth import requires
from broker.api.metrics_latency import LatencyTracker
from broker.keys import BROKER_GROUP, WORKER_GROUP

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.engine.engine import Engine
    from broker.keys import Keys

LATENCY: web.AppKey[LatencyTracker] = web.AppKey("metrics_latency", LatencyTracker)
IDLE_SCAN = 1000  # PEL entries read per stream for the max idle time (the PEL is short)

Stream = tuple[str, str, str]  # label, key, consumer group


class _Families:
    """What generate_latest needs: an object whose collect() yields metric families."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def gauge(name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> Any:
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        fam.add_metric(list(key), value)
    return fam


async def stream_stats(redis: Redis, streams: list[Stream]) -> dict[str, tuple[int, int, float]]:
    """label → (length, pending, max idle s) of each stream."""
    pipe = redis.pipeline(transaction=False)
    for _, key, group in streams:
        pipe.xlen(key)
        pipe.xpending(key, group)
    res = await pipe.execute(raise_on_error=False)
    lengths = res[0::2]
    pending = [r.get("pending", 0) if isinstance(r, dict) else 0 for r in res[1::2]]
    pipe = redis.pipeline(transaction=False)
    busy = [(s, n) for s, n in zip(streams, pending, strict=True) if n]
    for (_, key, group), _n in busy:
        pipe.xpending_range(key, group, min="-", max="+", count=IDLE_SCAN)
    ranges = await pipe.execute(raise_on_error=False) if busy else []
    idle: dict[str, float] = {}
    for ((label, _, _), _n), rows in zip(busy, ranges, strict=True):
        if isinstance(rows, list) and rows:
            idle[label] = max(int(r["time_since_delivered"]) for r in rows) / 1000
    return {
        label: (int(n) if isinstance(n, int) else 0, int(p), idle.get(label, 0.0))
        for (label, _, _), n, p in zip(streams, lengths, pending, strict=True)
    }


async def task_states(redis: Redis, keys: Keys, runs: list[str]) -> Counter[str]:
    """Tasks per state over the given runs (their n_<state> counters)."""
    pipe = redis.pipeline(transaction=False)
    for run in runs:
        pipe.hgetall(keys.run(run))
    totals: Counter[str] = Counter()
    for h in await pipe.execute() if runs else []:
        for field, value in h.items():
            if field.startswith("n_"):
                totals[field[2:]] += int(value)
    return totals


async def runner_states(redis: Redis, keys: Keys, ids: list[str]) -> Counter[str]:
    """Live runners (heartbeat present) per advertised state."""
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.exists(keys.heartbeat(rid))
        pipe.hget(keys.runner(rid), "state")
    res = await pipe.execute() if ids else []
    return Counter(
        (state or "unknown") for alive, state in zip(res[0::2], res[1::2], strict=True) if alive
    )


def queue_families(
    classes: list[str], ready: list[tuple[int, int]], capacity: dict[str, str],
    streams: dict[str, Any],
) -> list[Any]:
    """`ready`: per class, (in the ready set, parked in dagb:unfit: bigger than every runner)."""
    by_class: dict[tuple[str, ...], float] = {}
    in_flight, cap, waiting, unfit = {}, {}, {}, {}
    for c, (n, parked) in zip(classes, ready, strict=True):
        length, pending, _ = streams[f"q:{c}"]
        by_class |= {(c, "ready"): n, (c, "unfit"): parked, (c, "queued"): length - pending,
                     (c, "delivered"): pending}
        waiting[(c,)], in_flight[(c,)], cap[(c,)] = n, length, int(capacity.get(c, 0))
        unfit[(c,)] = parked
    return [
        gauge("dagbroker_class_tasks", "Tasks per class and queue state", ["class", "state"],
              by_class),
        gauge("dagbroker_queue_ready", "Ready tasks waiting for a slot", ["class"], waiting),
        gauge("dagbroker_queue_unfit", "Ready tasks parked: no live runner of the class is big "
              "enough", ["class"], unfit),
        gauge("dagbroker_queue_in_flight", "Dispatched tasks not completed", ["class"],
              in_flight),
        gauge("dagbroker_queue_capacity", "Free-slot budget of live runners", ["class"], cap),
    ]


def stream_families(streams: dict[str, tuple[int, int, float]]) -> list[Any]:
    return [
        gauge("dagbroker_stream_length", "Entries in the stream", ["stream"],
              {(s,): v[0] for s, v in streams.items()}),
        gauge("dagbroker_stream_pending", "Delivered, unacknowledged entries", ["stream"],
              {(s,): v[1] for s, v in streams.items()}),
        gauge("dagbroker_stream_pending_max_idle_seconds", "Longest idle time in the PEL",
              ["stream"], {(s,): v[2] for s, v in streams.items()}),
    ]


def engine_families(engine: Engine) -> list[Any]:
    info = InfoMetricFamily("dagbroker_build", "This broker process")
    info.add_metric([], {"version": broker.__version__, "broker_id": engine.broker_id})
    applied = CounterMetricFamily(
        "dagbroker_completions_applied", "Completions this broker applied",
        value=engine.completions.applied,
    )
    ignored = CounterMetricFamily(
        "dagbroker_completions_ignored", "Duplicate or stale completions this broker ignored",
        value=engine.completions.ignored,
    )
    return [info, applied, ignored]


async def collect(engine: Engine) -> list[Any]:
    """Every gauge and counter, read now."""
    redis, keys = engine.redis, engine.keys
    pipe = redis.pipeline(transaction=False)
    pipe.smembers(keys.classes())
    pipe.smembers(keys.active_runs())
    pipe.smembers(keys.runners())
    pipe.hgetall(keys.capacity())
    pipe.zcard(keys.delayed())
    classes_set, active, runner_ids, capacity, delayed = await pipe.execute()
    classes = sorted(classes_set)
    pipe = redis.pipeline(transaction=False)
    for c in classes:
        pipe.zcard(keys.ready(c))
        pipe.zcard(keys.unfit(c))
    counts = await pipe.execute() if classes else []
    ready = list(zip(counts[::2], counts[1::2], strict=True))
    streams = [("done", keys.done(), BROKER_GROUP)]
    streams += [(f"q:{c}", keys.queue(c), WORKER_GROUP) for c in classes]
    stats = await stream_stats(redis, streams)
    tasks = await task_states(redis, keys, sorted(active))
    runners = await runner_states(redis, keys, sorted(runner_ids))
    return [
        gauge("dagbroker_tasks", "Tasks of active runs per state", ["state"],
              {(s,): n for s, n in tasks.items()}),
        *queue_families(classes, ready, capacity, stats),
        *stream_families(stats),
        gauge("dagbroker_delayed_tasks", "Retries and timers waiting for their time", [],
              {(): delayed}),
        gauge("dagbroker_runs_active", "Runs expanding or running", [], {(): len(active)}),
        gauge("dagbroker_runners_up", "Runners with a live heartbeat", [],
              {(): sum(runners.values())}),
        gauge("dagbroker_runners", "Live runners per state", ["state"],
              {(s,): n for s, n in runners.items()}),
        *engine_families(engine),
    ]


@requires("metrics")
@api_doc(
    summary="Prometheus metrics (admin token or `metrics` scope)",
    responses={200: None},
    content=TEXT,
    tags=("operations",),
)
async def metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    tracker = request.app[LATENCY]
    await tracker.observe(engine.redis, engine.keys)
    families = [*await collect(engine), *tracker.families()]
    body = generate_latest(_Families(families))  # type: ignore[arg-type]
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
