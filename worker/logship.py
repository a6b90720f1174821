"""Live logs: tails a running task's log file into the capped stream `dagb:log:{run}:{node}`.

The log file on the worker stays the full record; the stream carries the last
LOG_STREAM_MAXLEN lines of the task (all attempts), each entry `attempt`, `line`, for
`GET /api/v1/runs/{run}/logs/{task}` and `dagbroker logs -f`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.wire import TaskMessage

logger = logging.getLogger(__name__)

LOG_STREAM_MAXLEN = 10_000
MAX_LINE_CHARS = 4096
READ_BYTES = 256 * 1024


class LogShipper:
    """`async with LogShipper(...):` around a running process; flushes the rest on exit."""

    def __init__(self, redis: Redis, keys: Keys, msg: TaskMessage, path: Path,
                 interval_s: float = 0.25) -> None:
        self.redis = redis
        self.key = keys.log(msg.run, msg.node)
        self.attempt = str(msg.attempt)
        self.path = path
        self.interval_s = interval_s
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LogShipper:
        self.task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush(final=True)

    async def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                await self.flush()
            except Exception:  # Redis away for a moment: the file keeps everything
                logger.debug("log shipping to %s failed", self.key, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.interval_s)

    def _read_new(self) -> bytes:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(READ_BYTES)
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data

    async def flush(self, final: bool = False) -> int:
        """Ship complete new lines (and, at the end, the unfinished last one)."""
        sent = 0
        while True:
            data = await asyncio.to_thread(self._read_new)
            chunk = self.partial + data
            lines = chunk.split(b"\n")
            self.partial = lines.pop()
            if final and self.partial and not data:
                lines.append(self.partial)
                self.partial = b""
            if lines:
                pipe = self.redis.pipeline(transaction=False)
                for raw in lines:
                    text = raw.decode(errors="replace")[:MAX_LINE_CHARS]
                    pipe.xadd(self.key, {"attempt": self.attempt, "line": text},
                              maxlen=LOG_STREAM_MAXLEN, approximate=True)
                await pipe.execute()
                sent += len(lines)
            if len(data) < READ_BYTES:
                if final and self.partial:
                    continue
                return sent
