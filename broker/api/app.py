"""create_app(settings): the aiohttp application, its resources and its background engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aredis
from aiohttp import web

from broker.api.appkeys import (
    EMBEDDED,
    ENGINE,
    NODEWORKS_PLUGINS,
    POLICY,
    REDIS,
    REVISIONS,
    SETTINGS,
)
from broker.api.audit import audit_middleware
from broker.api.auth import AUTH_STORE, auth_middleware
from broker.api.errors import error_middleware
from broker.api.history_keys import ARCHIVER, DB
from broker.api.hub import hub_ctx
from broker.api.logs_api import artifacts_ctx
from broker.api.metrics import LATENCY
from broker.api.metrics_latency import LatencyTracker
from broker.api.routes import route_table
from broker.api.ws import setup_websockets
from broker.auth.bootstrap import admin_token_path, ensure_admin
from broker.auth.store import AuthStore
from broker.config import Settings
from broker.embedded_redis import EmbeddedRedis, check_redis_safe
from broker.engine.engine import Engine
from broker.history.archive import BATCH as ARCHIVE_BATCH
from broker.history.archive import IDLE_S as ARCHIVE_IDLE_S
from broker.history.archive import Archiver
from broker.history.db import open_db
from broker.nodeworks.library import load_plugins
from broker.policy import load_policy
from broker.revisions import RevisionStore

logger = logging.getLogger(__name__)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Embedded redis-server unless a URL is given; refuse an evicting Redis."""
    settings = app[SETTINGS]
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_path, appendfsync=settings.appendfsync)
        await embedded.start()
        url = embedded.url
        logger.info("embedded Redis at %s; inspect it with: %s", url, embedded.cli_command)
    app[EMBEDDED] = embedded
    client = aredis.Redis.from_url(url, decode_responses=True)
    try:
        await check_redis_safe(client)
        app[REDIS] = client
        yield
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    engine = Engine(app[REDIS], app[SETTINGS])
    app[ENGINE] = engine
    await engine.start()
    yield
    await engine.stop()


async def history_ctx(app: web.Application) -> AsyncIterator[None]:
    """SQLite (users, tokens, audit); on first start, the admin and its token file."""
    settings = app[SETTINGS]
    async with open_db(settings.data_path / "dagbroker.db") as db:
        app[DB] = db
        store = AuthStore(db)
        app[AUTH_STORE] = store
        token = await ensure_admin(store, settings.data_path)
        if token is not None:
            print(
                f"admin token (shown once; also in {admin_token_path(settings.data_path)}): "
                f"{token}",
                flush=True,
            )
        yield


async def archive_ctx(app: web.Application) -> AsyncIterator[None]:
    """The archiver loop: events → SQLite run history (stops with the engine)."""
    engine = app[ENGINE]
    archiver = Archiver(engine.redis, engine.keys, app[DB], engine.broker_id)
    await archiver.setup()
    app[ARCHIVER] = archiver
    task = asyncio.create_task(_archive_loop(archiver, engine.stop_event), name="archiver")
    yield
    engine.stop_event.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _archive_loop(archiver: Archiver, stop: asyncio.Event) -> None:
    failures = 0
    while not stop.is_set():
        try:
            if await archiver.step() < ARCHIVE_BATCH:  # caught up: let events accumulate
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), ARCHIVE_IDLE_S)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            logger.exception("archiver failed (%d in a row)", failures)
            await asyncio.sleep(min(5.0, 0.1 * 2**failures))


async def revisions_ctx(app: web.Application) -> AsyncIterator[None]:
    store = RevisionStore(app[SETTINGS].data_path / "workflows.git")
    app[REVISIONS] = store
    yield
    store.close()


def create_app(settings: Settings) -> web.Application:
    """Build the application; resources start with the app and stop in reverse order."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, auth_middleware, audit_middleware],
    )
    app[SETTINGS] = settings
    app[POLICY] = load_policy(settings.policy_file)
    app[NODEWORKS_PLUGINS] = load_plugins(settings.nodeworks_plugins)
    app[LATENCY] = LatencyTracker()
    app.cleanup_ctx.extend([history_ctx, redis_ctx, engine_ctx, archive_ctx, revisions_ctx,
                            hub_ctx, artifacts_ctx])
    setup_websockets(app)  # on_shutdown closes live sockets with GOING_AWAY
    app.add_routes(route_table())
    return app


def write_address_file(settings: Settings, url: str) -> Path:
    """`{data_dir}/broker.json` (mode 0600) tells local CLI commands where the broker listens
    and, on the broker's own machine, the admin token to use."""
    path = settings.data_path / "broker.json"
    for wildcard in ("0.0.0.0", "[::]", "::"):
        url = url.replace(f"//{wildcard}:", "//127.0.0.1:")
    doc: dict[str, str] = {"url": url}
    token_file = admin_token_path(settings.data_path)
    if token_file.exists():
        doc["token"] = token_file.read_text().strip()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(doc) + "\n")
    return path
