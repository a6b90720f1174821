"""The control stream `ctl:{runner}`: orders to this runner (cancel a task, drain, shutdown).

Read with plain XREAD (no group) from the id that was last when the runner registered, so an
order sent while the worker was busy elsewhere is never missed. A cancelled task that is
running is killed by its executor; one that waits for resources is taken out of the waiting
line and reported cancelled through `on_withdrawn` (it never starts).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broker.wire import Outcome
from worker.streams import flatten_reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

    from worker.handle import TaskHandle
    from worker.inflight import InFlight

logger = logging.getLogger(__name__)


async def last_entry_id(redis: Redis, stream: str) -> str:
    """The id to read after: the newest entry's, or 0-0 when the stream is empty/missing."""
    newest = await redis.xrevrange(stream, count=1)
    return str(newest[0][0]) if newest else "0-0"


class ControlReader:
    def __init__(
        self, redis: Redis, stream: str, block_ms: int, inflight: InFlight,
        on_drain: Callable[[str], None], on_withdrawn: Callable[[list[TaskHandle]], None],
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.block_ms = block_ms
        self.inflight = inflight
        self.on_drain = on_drain
        self.on_withdrawn = on_withdrawn  # reports stopped waiting tasks (must not block)
        self.last_id = "0-0"

    async def start_from_now(self) -> None:
        self.last_id = await last_entry_id(self.redis, self.stream)

    async def read_once(self) -> int:
        reply = await self.redis.xread({self.stream: self.last_id}, count=100, block=self.block_ms)
        entries = flatten_reply(reply)
        for _, msg_id, fields in entries:
            self.last_id = msg_id
            self.apply(fields)
        return len(entries)

    def apply(self, fields: dict[str, str]) -> None:
        op = fields.get("op", "")
        if op == "cancel":
            run, node = fields.get("run", ""), fields.get("node", "")
            handles = self.inflight.find(run, node)
            if not handles:
                logger.info("cancel %s/%s: not running here", run, node)
            for h in handles:
                logger.info("cancel %s/%s#%d", run, node, h.msg.attempt,
                            extra={"run": run, "node": node, "attempt": h.msg.attempt})
                h.request_stop(Outcome.CANCELLED, "cancelled")
            waiting = self.inflight.withdraw(handles)
            if waiting:
                self.on_withdrawn(waiting)
        elif op in ("drain", "shutdown"):
            self.on_drain(f"{op} order")
        else:
            logger.warning("ignoring unknown control order %r", fields)
