"""Live logs: tails running tasks' log files into the capped streams `dagb:log:{run}:{node}`.

The log file on the worker stays the full record; the stream carries the last
LOG_STREAM_MAXLEN lines of the task (all attempts), each entry `attempt`, `line`, for
`GET /api/v1/runs/{run}/logs/{task}` and `dagbroker logs -f`.

One `LogShippers` follows any number of files with one loop: each round reads what is new in
every file in one thread call and sends every complete line in one pipeline, so a SLURM array
or an SSH batch of hundreds of tasks costs one round trip per interval, not one per task.
Whoever writes the file (a local process, SLURM output copied at each poll, an SSH channel)
does not matter. Shipping starts at the file's size when the shipper is created, so a worker
that re-attaches to a running job does not send the same lines twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.wire import TaskMessage

logger = logging.getLogger(__name__)

LOG_STREAM_MAXLEN = 10_000
MAX_LINE_CHARS = 4096
READ_BYTES = 256 * 1024
ROUND_BYTES = 4 * READ_BYTES  # per file per round; the rest waits for the next round


class _Tail:
    """One log file: where shipping stands, and the unfinished last line."""

    __slots__ = ("key", "attempt", "path", "offset", "partial")

    def __init__(self, key: str, attempt: int, path: Path) -> None:
        self.key = key
        self.attempt = str(attempt)
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""

    def collect(self, final: bool) -> tuple[list[bytes], bool]:
        """Blocking: the complete new lines (and, when final, the unfinished one too).
        → (lines, whether more data is waiting in the file)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(ROUND_BYTES)
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        more = len(data) == ROUND_BYTES
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if final and not more and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return lines, more


class LogShippers:
    """`async with LogShippers(redis, keys, [(msg, log path), …]):` around running tasks;
    ships every `interval_s` and flushes the rest (unfinished last lines too) on exit."""

    def __init__(self, redis: Redis, keys: Keys, files: Iterable[tuple[TaskMessage, Path]],
                 interval_s: float = 0.25) -> None:
        self.redis = redis
        self.tails = [_Tail(keys.log(m.run, m.node), m.attempt, p) for m, p in files]
        self.interval_s = interval_s
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LogShippers:
        if self.tails:
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
            except Exception:  # Redis away for a moment: the files keep everything
                logger.debug("log shipping failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.interval_s)

    def _collect(self, final: bool) -> tuple[list[tuple[_Tail, list[bytes]]], bool]:
        out = []
        more = False
        for t in self.tails:
            lines, waiting = t.collect(final)
            more = more or waiting
            if lines:
                out.append((t, lines))
        return out, more

    async def flush(self, final: bool = False) -> int:
        """Ship complete new lines of every file. → lines sent."""
        sent = 0
        while True:
            batch, more = await asyncio.to_thread(self._collect, final)
            if batch:
                pipe = self.redis.pipeline(transaction=False)
                for t, lines in batch:
                    for raw in lines:
                        text = raw.decode(errors="replace")[:MAX_LINE_CHARS]
                        pipe.xadd(t.key, {"attempt": t.attempt, "line": text},
                                  maxlen=LOG_STREAM_MAXLEN, approximate=True)
                        sent += 1
                await pipe.execute()
            if not more:
                return sent


class LogShipper(LogShippers):
    """`async with LogShipper(redis, keys, msg, path):` around one running process."""

    def __init__(self, redis: Redis, keys: Keys, msg: TaskMessage, path: Path,
                 interval_s: float = 0.25) -> None:
        super().__init__(redis, keys, [(msg, path)], interval_s)
