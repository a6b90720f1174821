"""Live log follow over the websocket: `follow_log` / `unfollow_log` messages of a client.

A client sends `{"op": "follow_log", "run": R, "task": T, "after": "<stream id>"}` (`after`
optional, default from the start of the retained lines) and receives frames
`{"type": "log", "run", "task", "lines": [{"id", "attempt", "line"}], "last_id"}` as the
worker ships lines into `dagb:log:{run}:{task}`, until it sends `{"op": "unfollow_log", "run",
"task"}` or closes the socket. The same owner check as the REST log endpoint applies (another
user's run is "not found", exactly as over REST). A bad message gets one
`{"type": "error", "op", "message", "details"}` frame and changes nothing; the socket stays open.

Following polls the stream with XRANGE every POLL_S (no connection held in a blocking read),
so many followers cost a few cheap reads per second each. A socket follows at most
MAX_FOLLOWS logs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from broker.api.auth import User
    from broker.engine.engine import Engine

logger = logging.getLogger(__name__)

POLL_S = 0.3
MAX_FOLLOWS = 8
BATCH = 500  # lines per frame
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
NAME = re.compile(r"^[^\s]{1,300}$")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class FollowError(ValueError):
    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


def _field(msg: dict[str, Any], name: str) -> str:
    value = msg.get(name)
    if not isinstance(value, str) or not NAME.match(value):
        raise FollowError(f"'{name}' must be a non-empty string without spaces",
                          {"field": name})
    return value


class LogFollows:
    """The log follows of one websocket."""

    def __init__(self, engine: Engine, user: User, send: Send) -> None:
        self.engine = engine
        self.user = user
        self.send = send
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def handle(self, text: str) -> None:
        """One client message; errors are answered on the socket."""
        op = None
        try:
            try:
                msg = json.loads(text)
            except ValueError as e:
                raise FollowError(f"invalid JSON: {e}", {"position": getattr(e, "pos", None)}) \
                    from e
            if not isinstance(msg, dict):
                raise FollowError("a message must be a JSON object", {"path": "$"})
            op = msg.get("op")
            if op == "follow_log":
                await self._follow(msg)
            elif op == "unfollow_log":
                self._unfollow((_field(msg, "run"), _field(msg, "task")))
            else:
                raise FollowError("unknown op: use follow_log or unfollow_log", {"field": "op"})
        except FollowError as e:
            await self.send({"type": "error", "op": op, "message": str(e), "details": e.details})

    async def _follow(self, msg: dict[str, Any]) -> None:
        run, task = _field(msg, "run"), _field(msg, "task")
        after = msg.get("after", "0-0")
        if not isinstance(after, str) or not STREAM_ID.match(after):
            raise FollowError("'after' must be a log entry id like 1700000000000-0",
                              {"field": "after"})
        redis, keys = self.engine.redis, self.engine.keys
        owner = await redis.hget(keys.run(run), "owner")
        if owner is None or (not self.user.admin and owner != self.user.id):
            raise FollowError(f"no run '{run}'", {"run": run})
        if not await redis.exists(keys.task(run, task)):
            raise FollowError(f"no task '{task}' in run '{run}'", {"run": run, "task": task})
        key = (run, task)
        if key not in self.tasks and len(self.tasks) >= MAX_FOLLOWS:
            raise FollowError(f"at most {MAX_FOLLOWS} logs are followed at once per socket",
                              {"following": len(self.tasks), "run": run, "task": task})
        self._unfollow(key)  # following again restarts from the given position
        self.tasks[key] = asyncio.create_task(self._pump(run, task, after),
                                              name=f"ws-log-{run}-{task}")

    def _unfollow(self, key: tuple[str, str]) -> None:
        t = self.tasks.pop(key, None)
        if t is not None:
            t.cancel()

    async def _pump(self, run: str, task: str, after: str) -> None:
        try:
            await self._follow_stream(run, task, after)
        except ConnectionError:  # the socket went away: the handler cleans up
            return

    async def _follow_stream(self, run: str, task: str, after: str) -> None:
        redis, stream = self.engine.redis, self.engine.keys.log(run, task)
        while True:
            try:
                entries = await redis.xrange(stream, f"({after}", "+", count=BATCH)
            except RedisError as e:  # Redis away for a moment: keep the position, try again
                logger.debug("log follow of %s/%s: %s", run, task, e)
                await asyncio.sleep(POLL_S * 3)
                continue
            if entries:
                after = entries[-1][0]
                lines = [{"id": eid, "attempt": int(f.get("attempt", 0) or 0),
                          "line": f.get("line", "")} for eid, f in entries]
                await self.send({"type": "log", "run": run, "task": task, "lines": lines,
                                 "last_id": after})
                if len(entries) == BATCH:
                    continue
            await asyncio.sleep(POLL_S)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        self.tasks.clear()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
