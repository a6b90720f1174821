"""Entry points: `main(argv)` for `dagbroker worker` / `python -m worker`, and
`run_worker(settings, stop)` to run a worker inside an existing event loop."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

from worker.cli import parse_settings
from worker.logs import configure_logging
from worker.service import Worker
from worker.signals import install_signal_handlers

if TYPE_CHECKING:
    from collections.abc import Mapping

    from worker.config import WorkerSettings

logger = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The Redis URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def task_base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What tasks inherit: the worker's environment minus its own DAGBROKER_* settings
    (the Redis URL may carry a password; user code must not see it)."""
    return {k: v for k, v in environ.items() if not k.startswith("DAGBROKER_")}


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> int:
    """Run until drained (signal, control order, or `stop` set). → process exit code."""
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    worker = Worker(settings, redis, base_env=task_base_env(os.environ))
    remove_handlers = install_signal_handlers(
        asyncio.get_running_loop(), worker.request_drain, worker.request_hard_stop
    )
    logger.info("connecting to %s (prefix %s)", redact_url(settings.redis_url), settings.prefix)
    try:
        return await worker.run(stop)
    finally:
        remove_handlers()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    settings, verbose = parse_settings(argv, os.environ)
    configure_logging(settings.log_json, verbose, settings.runner_id)
    return asyncio.run(run_worker(settings))
