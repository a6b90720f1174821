"""SIGTERM drain of a real `python -m worker` process."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from helpers import wait_until
from test_worker_support import WorkerHarness, file_exists, wk_fixture  # noqa: F401

from broker.wire import Outcome


async def spawn_worker(
    wk: WorkerHarness, env: dict[str, str], rid: str, grace_s: float
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "--redis-url", wk.url, "--prefix", wk.keys.prefix,
        "--classes", "cpu", "--slots", "2", "--id", rid, "--data-dir", str(wk.tmp / "data"),
        "--grace-period", str(grace_s), "--heartbeat-interval", "0.2", "--heartbeat-ttl", "5",
        "--kill-grace", "1", "--log-json",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )

    async def registered() -> bool:
        if proc.returncode is not None:
            raise AssertionError("the worker exited early")
        return bool(await wk.rds.exists(wk.keys.heartbeat(rid)))

    await wait_until(registered, 15.0, what="the worker process to register")
    return proc


async def start_two(wk: WorkerHarness, quick_s: float) -> None:
    """`quick` ends within the grace period; `slow` overruns it. Both are running on return."""
    for node, sleep_s in (("quick", quick_s), ("slow", 30)):
        await wk.push(node, command=f"touch {wk.tmp / node}; sleep {sleep_s}; echo done")

    await wait_until(file_exists(wk.tmp / "quick"), 10.0, what="quick to start")
    await wait_until(file_exists(wk.tmp / "slow"), 10.0, what="slow to start")


async def test_sigterm_drains_then_hands_back(wk: WorkerHarness, child_env: dict[str, str]) -> None:
    rid = "drain-test"
    proc = await spawn_worker(wk, child_env, rid, grace_s=1.5)
    await start_two(wk, quick_s=0.4)
    proc.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        return await wk.rds.hget(wk.keys.runner(rid), "state") == "draining"

    await wait_until(draining, 5.0, what="state draining")
    await wk.push("late", command="true")  # arrives while draining: must not be taken
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    quick, slow = await wk.completion("quick"), await wk.completion("slow")
    assert quick.outcome is Outcome.SUCCEEDED and "done" in quick.tail
    assert (slow.outcome, slow.reason) == (Outcome.HANDED_BACK, "runner shutting down")
    assert slow.runner == rid
    assert len(await wk.done()) == 2
    assert await wk.rds.xlen(wk.keys.queue("cpu")) == 1 and await wk.pending() == 0
    assert not await wk.rds.exists(wk.keys.runner(rid), wk.keys.heartbeat(rid))
    assert not await wk.rds.sismember(wk.keys.runners(), rid)
    lines = stderr.decode().splitlines()
    assert lines and all(line.startswith("{") for line in lines)  # --log-json
    assert any('"node":"slow"' in line for line in lines)
    assert all(f'"runner":"{rid}"' in line for line in lines)


async def test_second_signal_skips_the_grace_period(
    wk: WorkerHarness, child_env: dict[str, str]
) -> None:
    rid = "hard-stop"
    proc = await spawn_worker(wk, child_env, rid, grace_s=60)
    await wk.push("slow", command=f"touch {wk.tmp / 'slow'}; sleep 30")
    await wait_until(file_exists(wk.tmp / "slow"), 10.0, what="slow to start")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        return await wk.rds.hget(wk.keys.runner(rid), "state") == "draining"

    await wait_until(draining, 5.0, what="state draining")
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 15)
    assert proc.returncode == 0
    assert time.monotonic() - began < 10  # far less than the 60 s grace period
    assert (await wk.completion("slow")).outcome is Outcome.HANDED_BACK
    assert not (wk.tmp / "data" / "work" / "r1").exists()
