"""Liveness and readiness probes (public: load balancers and orchestrators call them).

`live`: the process answers HTTP. `ready`: Redis answers a PING and every engine loop
finished an iteration recently (a loop that keeps failing or hangs makes the broker unready).
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from aiohttp import web

from broker.api.apidoc import api_doc
from broker.api.appkeys import ENGINE, SETTINGS
from broker.api.responses import Live, LoopState, Ready
from broker.engine.loops import LoopBeat, loop_beats

logger = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0


def loop_state(beat: LoopBeat, now: float, grace_s: float) -> LoopState:
    """A loop is fresh while its last good iteration (or its start) is younger than
    `grace_s` plus three of its intervals."""
    stale_after = grace_s + 3 * beat.interval_s
    since = beat.last_ok_at if beat.last_ok_at is not None else beat.started_at
    age = None if beat.last_ok_at is None else round(now - beat.last_ok_at, 3)
    return LoopState(
        age_s=age,
        stale_after_s=stale_after,
        failures=beat.failures,
        fresh=now - since <= stale_after,
    )


async def redis_reachable(request: web.Request) -> bool:
    try:
        await asyncio.wait_for(request.app[ENGINE].redis.ping(), PING_TIMEOUT_S)
        return True
    except Exception as e:  # any failure to answer means "not reachable"
        logger.warning("readiness: Redis did not answer a PING: %s", e)
        return False


def _reasons(redis_ok: bool, loops: dict[str, LoopState], stopping: bool) -> list[str]:
    out = [] if redis_ok else ["redis: no answer to PING"]
    if stopping:
        out.append("engine: stopping")
    if not loops:
        out.append("engine: no loop has started")
    for name, st in sorted(loops.items()):
        if not st.fresh:
            age = "never succeeded" if st.age_s is None else f"last success {st.age_s:.1f}s ago"
            out.append(f"loop {name}: stale ({age}, {st.failures} failures in a row)")
    return out


@api_doc(summary="Liveness: the process is up", responses={200: Live}, tags=("health",))
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@api_doc(
    summary="Readiness: Redis reachable and engine loops fresh",
    responses={200: Ready, 503: Ready},
    tags=("health",),
)
async def ready(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    grace_s = request.app[SETTINGS].health_stale_s
    now = time.monotonic()
    loops = {n: loop_state(b, now, grace_s) for n, b in loop_beats(engine.stop_event).items()}
    redis_ok = await redis_reachable(request)
    reasons = _reasons(redis_ok, loops, engine.stop_event.is_set())
    body = Ready(
        status="unready" if reasons else "ready", reasons=reasons, redis=redis_ok, loops=loops
    )
    return web.json_response(msgspec.to_builtins(body), status=503 if reasons else 200)
