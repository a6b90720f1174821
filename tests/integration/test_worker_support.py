"""Helpers for the worker tests (no tests here): act as the broker's dispatch, run a worker.

Stream entries are written exactly as `dispatch_class` in broker/engine/lua/lib.lua writes
them, with a matching task hash in state `dispatched`, so `Scripts.start` accepts them and
the worker is tested without the broker. Test modules import the `wk` fixture (`wk_fixture`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from helpers import wait_until

from broker.keys import WORKER_GROUP, Keys
from broker.spec import TaskSpec, task_spec_encoder
from broker.wire import Completion
from worker.config import WorkerSettings
from worker.main import run_worker


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 here may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class WorkerHarness:
    """One test's Redis view (its own prefix) plus in-process workers it starts."""

    def __init__(self, rds: aredis.Redis, keys: Keys, url: str, tmp: Path) -> None:
        self.rds = rds
        self.keys = keys
        self.url = url
        self.tmp = tmp
        self.runs: list[tuple[asyncio.Task[int], asyncio.Event]] = []
        self.defaults: dict[str, Any] = {}  # settings every worker of this harness gets

    # -- acting as the broker ---------------------------------------------------------------
    def _dispatch(
        self, pipe: Any, node: str, executor: str = "shell", *, run: str = "r1", cls: str = "cpu",
        attempt: int = 1, params: dict[str, Any] | None = None, vars: dict[str, Any] | None = None,
        parents: list[str] | None = None, state: str = "dispatched", batch: str | None = None,
        **spec: Any,
    ) -> None:
        tpl = node.split(".")[0]
        spec_json = task_spec_encoder.encode(TaskSpec(node=tpl, executor=executor, **spec)).decode()
        pipe.hset(self.keys.task(run, node), mapping={
            "state": state, "attempt": attempt, "class": cls, "tpl": tpl,
        })
        pipe.xadd(self.keys.queue(cls), {
            "run": run, "node": node, "attempt": str(attempt), "tpl": tpl,
            "batch": batch if batch is not None else f"{executor}:{cls}:0000000000",
            "spec": spec_json, "vars": json.dumps(vars) if vars else "",
            "params": json.dumps(params or {}), "parents": ",".join(parents or []),
            "priority": "0",
        })

    async def push(self, node: str, executor: str = "shell", **kw: Any) -> str:
        """Dispatch one task: task hash + an entry on dagb:q:{cls}, as dispatch_class does.

        Keyword arguments: run, cls, attempt, params, vars, parents, state, batch, and any
        TaskSpec field (command, script, callable, kwargs, timeout_s, env, workdir, ...).
        """
        pipe = self.rds.pipeline(transaction=True)
        self._dispatch(pipe, node, executor, **kw)
        _, entry_id = await pipe.execute()
        return str(entry_id)

    async def push_many(self, nodes: list[str], executor: str = "noop", **kw: Any) -> None:
        pipe = self.rds.pipeline(transaction=False)
        for node in nodes:
            self._dispatch(pipe, node, executor, **kw)
        await pipe.execute()

    async def set_result(self, node: str, result: Any, run: str = "r1") -> None:
        """A finished parent: its task hash holds its result as JSON text."""
        await self.rds.hset(self.keys.task(run, node), mapping={
            "state": "succeeded", "result": json.dumps(result),
        })

    async def done(self) -> list[Completion]:
        entries = await self.rds.xrange(self.keys.done())
        return [Completion.from_fields(f) for _, f in entries]

    async def wait_done(self, n: int, timeout_s: float = 10.0) -> list[Completion]:
        async def enough() -> list[Completion] | None:
            got = await self.done()
            return got if len(got) >= n else None

        return await wait_until(enough, timeout_s, what=f"{n} completion(s) on done")

    async def completion(self, node: str, timeout_s: float = 10.0) -> Completion:
        async def find() -> Completion | None:
            return next((c for c in await self.done() if c.node == node), None)

        return await wait_until(find, timeout_s, what=f"completion of {node}")

    async def task_state(self, node: str, run: str = "r1") -> str | None:
        return await self.rds.hget(self.keys.task(run, node), "state")

    async def wait_state(self, node: str, state: str, run: str = "r1") -> None:
        async def reached() -> bool:
            return await self.task_state(node, run) == state

        await wait_until(reached, 10.0, what=f"{node} to be {state}")

    async def pending(self, cls: str = "cpu") -> int:
        groups = await self.rds.xinfo_groups(self.keys.queue(cls))
        return int(next(g["pending"] for g in groups if g["name"] == WORKER_GROUP))

    # -- workers --------------------------------------------------------------------------
    def settings(self, **over: Any) -> WorkerSettings:
        base: dict[str, Any] = {
            "redis_url": self.url, "prefix": self.keys.prefix, "classes": ["cpu"], "slots": 4,
            "data_dir": str(self.tmp / "data"), "heartbeat_interval_s": 0.5,
            "heartbeat_ttl_s": 5.0, "block_ms": 200, "grace_period_s": 1.0, "kill_grace_s": 1.0,
        }
        base.update(self.defaults)
        base.update(over)
        return WorkerSettings(**base)

    async def start(self, **over: Any) -> WorkerSettings:
        """Run a worker in this event loop; wait until it is registered."""
        settings = self.settings(**over)
        stop = asyncio.Event()
        self.runs.append((asyncio.create_task(run_worker(settings, stop)), stop))

        async def registered() -> bool:
            return bool(await self.rds.exists(self.keys.heartbeat(settings.runner_id)))

        await wait_until(registered, 10.0, what="the worker to register")
        return settings

    async def stop_all(self) -> list[int]:
        for _, stop in self.runs:
            stop.set()
        codes = [await asyncio.wait_for(task, 15) for task, _ in self.runs]
        self.runs.clear()
        return codes


@pytest.fixture(name="wk")
async def wk_fixture(
    rds: aredis.Redis, keys: Keys, redis_server: Any, tmp_path: Path
) -> AsyncIterator[WorkerHarness]:
    harness = WorkerHarness(rds, keys, redis_server.url, tmp_path)
    yield harness
    for task, stop in harness.runs:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


def file_exists(path: Path) -> Callable[[], Awaitable[bool]]:
    """A wait_until predicate: the file exists."""

    async def check() -> bool:
        return os.path.exists(path)

    return check


def process_gone(pid: int) -> Callable[[], Awaitable[bool]]:
    """A wait_until predicate: the process is dead (or a zombie)."""

    async def check() -> bool:
        return not pid_alive(pid)

    return check


def read_text(path: Path) -> str:
    """Tests read small files synchronously (kept out of the async test bodies for ASYNC240)."""
    return path.read_text()


__all__ = [
    "WorkerHarness", "file_exists", "pid_alive", "process_gone", "read_text", "wk_fixture",
]
