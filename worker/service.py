"""The worker process: wires consumer, batches, heartbeat and control reader together,
and shuts them down in a fixed order.

Shutdown (first SIGTERM/SIGINT, a drain/shutdown order, or the caller's stop event):
  1. the consumer stops reading (its blocking read is cancelled);
  2. the runner's state becomes `draining` (the broker stops counting its slots);
  3. tasks waiting for resources are handed back at once (never started); running tasks get
     grace_period_s (a second signal cuts it short); what still runs is killed and reported
     handed_back, as is anything read but not started;
  4. the heartbeat keeps renewing leases until every batch has reported;
  5. entries pending on this consumer that never reached an executor are handed back;
  6. the runner hash, heartbeat key and control stream are deleted; the caller closes Redis.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from broker.engine.scripts import Scripts
from broker.keys import Keys
from broker.wire import Outcome
from worker.artifacts import store_from_settings
from worker.batchrun import run_batch, simple_completion
from worker.consumer import Consumer
from worker.control import ControlReader
from worker.executors import REGISTRY, ExecContext, configure_executors
from worker.executors.aws_batch import enable_aws_batch
from worker.executors.aws_config import aws_batch_config
from worker.executors.base import reattachable_executors
from worker.fencing import Fence, ids_by_stream
from worker.heartbeat import send_heartbeat
from worker.inflight import InFlight
from worker.loops import run_every, run_forever, wait_first
from worker.orphans import hand_back_pending
from worker.registry import (
    DRAINING,
    RunnerStatus,
    delete_idle_consumer,
    ensure_groups,
    now_ms,
    register_runner,
    set_runner_state,
    unregister_runner,
)
from worker.reporter import ack_entries, report_completions
from worker.resources import Amount, format_cores

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping
    from typing import Any

    from redis.asyncio import Redis

    from worker.config import WorkerSettings
    from worker.executors.base import Reattachable
    from worker.handle import TaskHandle
    from worker.streams import Entry

logger = logging.getLogger(__name__)

PREFERRED_ORDER = ("shell", "python", "noop")


def advertised_executors() -> list[str]:
    known = [n for n in PREFERRED_ORDER if n in REGISTRY]
    return known + sorted(n for n in REGISTRY if n not in known)


class Worker:
    def __init__(self, settings: WorkerSettings, redis: Redis, base_env: Mapping[str, str]) -> None:
        s = settings
        self.settings = s
        self.redis = redis
        self.keys = Keys(s.prefix)
        self.streams = [self.keys.queue(c) for c in s.classes]
        aws_batch = aws_batch_config(s)
        if aws_batch is not None:
            enable_aws_batch(aws_batch)  # offered only with a job queue
        configure_executors(s)  # SLURM defaults, SSH inventory
        self.executors = advertised_executors()
        self.artifacts = store_from_settings(s)
        self.status = RunnerStatus()
        self.inflight = InFlight(s.slots, Amount.of(s.cores, s.memory_mb, s.gpus))
        self.fence = Fence(s, self.inflight, self._start_waiting)  # the lease may be gone: stop
        self._link_broken = False  # a heartbeat failed since the last one that got through
        self.draining = asyncio.Event()
        self.hard_stop = asyncio.Event()
        self.scripts = Scripts(redis, s.prefix)
        self.ctx = ExecContext(
            runner_id=s.runner_id, redis=redis, keys=self.keys, data_dir=Path(s.data_dir),
            kill_grace_s=s.kill_grace_s, base_env=base_env, artifacts=self.artifacts,
            aws_batch=aws_batch,
        )
        self.consumer = Consumer(
            redis, s.runner_id, self.streams, s.block_ms, self.inflight,
            launch=self.launch_batch, drop=self.drop_entries, settle=self.settle_unstarted,
            batch_max=s.batch_max,
        )
        self.control = ControlReader(
            redis, self.keys.control(s.runner_id), s.block_ms, self.inflight, self.request_drain,
            on_withdrawn=self.settle_unstarted,
        )
        self._tasks: set[asyncio.Task[None]] = set()  # batches and acks in flight

    # -- requests (sync: called from signal handlers and the control reader) ------------
    def request_drain(self, why: str = "stop requested") -> None:
        if not self.draining.is_set():
            logger.info("runner %s draining (%s)", self.settings.runner_id, why)
            self.draining.set()

    def request_hard_stop(self) -> None:
        self.request_drain("second signal")
        self.hard_stop.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    def launch_batch(self, handles: list[TaskHandle]) -> None:
        self._spawn(self._run_batch(handles))

    def settle_unstarted(self, handles: list[TaskHandle]) -> None:
        """Report stopped tasks that never started (cancelled or handed back while waiting
        for resources, or too big for this runner) with their stop outcome and reason."""
        self._spawn(self._report_unstarted(handles))

    async def _report_unstarted(self, handles: list[TaskHandle]) -> None:
        rid = self.settings.runner_id
        items = [(h.key, simple_completion(h, rid, h.stop_outcome or Outcome.HANDED_BACK,
                                           h.stop_reason)) for h in handles]
        try:
            await report_completions(self.redis, self.keys, items)
        finally:
            self.inflight.discard(handles)
            self._start_waiting()

    def _start_waiting(self) -> None:
        """Resources or a slot came free: start the waiting tasks that fit (not when draining:
        the drain hands them back)."""
        if not self.draining.is_set():
            self.consumer.launch_ready()

    def _hand_back_waiting(self) -> None:
        waiting = self.inflight.withdraw_all()
        if waiting:
            logger.info("handing back %d task(s) waiting for resources", len(waiting))
            for h in waiting:
                h.request_stop(Outcome.HANDED_BACK, "runner shutting down")
            self.settle_unstarted(waiting)

    def drop_entries(self, entries: list[Entry]) -> None:
        self._spawn(self._ack([(stream, msg_id) for stream, msg_id, _ in entries]))

    async def _ack(self, entries: list[tuple[str, str]]) -> None:
        await ack_entries(self.redis, entries)

    async def _resume(self, executor: Reattachable, handles: list[TaskHandle]) -> None:
        """Follow tasks a previous process of this runner started (e.g. SLURM jobs: no
        resubmission), and report them."""
        try:
            completions = await executor.reattach(handles, self.ctx)
            await report_completions(self.redis, self.keys, [
                (h.key, c) for h, c in zip(handles, completions, strict=True)
            ])
        except Exception:
            logger.exception("re-attaching %d task(s) failed; their entries stay pending for "
                             "the broker's reaper", len(handles))
        finally:
            self.inflight.discard(handles)
            self._start_waiting()

    async def _run_batch(self, handles: list[TaskHandle]) -> None:
        try:
            await run_batch(handles, self.ctx, self.scripts)
        except Exception:
            logger.exception("a batch of %d task(s) failed; its entries stay pending for the "
                             "broker's reaper", len(handles))
        finally:
            self.inflight.discard(handles)
            self._start_waiting()

    async def beat(self) -> None:
        """Heartbeat + lease renewal; stops the tasks the broker took back (worker/fencing.py).

        Bounded by the fence deadline: a reply later than that cannot lift a fence anyway,
        and a heartbeat hung on a dead connection must not stop the next ones.
        """
        self.fence.check()  # back from a long pause: fence before anything else
        self.status.busy = self.inflight.running()
        self.status.free = self.inflight.pool.free
        taken = self.inflight.handles()
        sent_at = self.fence.now()
        try:
            lost = await asyncio.wait_for(send_heartbeat(
                self.redis, self.keys, self.settings, self.executors, self.status,
                ids_by_stream(taken), self.scripts,
            ), self.fence.after_s)
        except (RedisError, OSError, TimeoutError):
            self._link_broken = True
            raise
        if self._link_broken:  # idle pooled connections died with the link: drop them first,
            self._link_broken = False  # or the next command on each fails once (a batch start)
            await self.redis.connection_pool.disconnect(inuse_connections=False)
        self.fence.renewed(sent_at)
        self.fence.drop_lost(taken, lost)

    async def _consume_once(self) -> None:
        await self.fence.wait_leased()  # cut off: take nothing new until a heartbeat gets through
        await self.consumer.read_once()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Register BEFORE reading: the broker's capacity for a class comes from live runners."""
        s = self.settings
        await self.control.start_from_now()
        sent_at = self.fence.now()
        await register_runner(self.redis, self.keys, s, self.executors, self.status)
        self.fence.renewed(sent_at)  # registering sets the heartbeat key
        await ensure_groups(self.redis, self.streams)
        for executor in reattachable_executors():  # the Reattachable protocol (executors/base)
            handles = await executor.find_reattachable(
                self.redis, self.keys, self.streams, s.runner_id, held=self.inflight
            )
            if handles:
                logger.info("re-attaching to %d task(s) of this runner (%s)", len(handles),
                            executor.name)
                self.inflight.add(handles)
                self._spawn(self._resume(executor, handles))
        logger.info("runner %s up: classes %s, %d slot(s), %s core(s), %d MiB, %d GPU(s), "
                    "executors %s", s.runner_id, ",".join(s.classes), s.slots,
                    format_cores(self.inflight.pool.total.millicores), s.memory_mb, s.gpus,
                    ",".join(self.executors))

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Serve until drained. → exit code (1: Redis unreachable at start)."""
        try:
            await self.start()
        except (RedisError, OSError) as e:
            logger.error("cannot register runner %s: %s", self.settings.runner_id, e)
            return 1
        beat_stop, closed = asyncio.Event(), asyncio.Event()
        s = self.settings
        heartbeat = run_every(s.heartbeat_interval_s, self.beat, beat_stop, "heartbeat")
        loops = [
            asyncio.create_task(heartbeat),
            asyncio.create_task(run_forever(self.control.read_once, closed, "control reader")),
            asyncio.create_task(run_every(self.fence.poll_s, self.fence.watch, beat_stop,
                                          "fencing")),
        ]
        consumer = asyncio.create_task(
            run_forever(self._consume_once, self.draining, "consumer")
        )
        try:
            await wait_first(self.draining.wait(), *([stop.wait()] if stop else []), timeout_s=None)
            self.request_drain()
            await self._drain(consumer)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await self._stop_batches()  # nothing left after a normal drain (error paths only)
            beat_stop.set()  # the heartbeat ran until every batch had reported
            closed.set()
            loops[1].cancel()  # the control reader may sit in a blocking XREAD
            await asyncio.gather(*loops, return_exceptions=True)
            await self._close()
        return 0

    async def _drain(self, consumer: asyncio.Task[None]) -> None:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        self._hand_back_waiting()
        self.status.state = DRAINING
        try:
            await set_runner_state(self.redis, self.keys, self.settings.runner_id, DRAINING)
        except RedisError as e:
            logger.warning("cannot set state draining: %s", e)
        await self._finish_running()

    async def _finish_running(self) -> None:
        grace_s = self.settings.grace_period_s
        if len(self.inflight) and not self.hard_stop.is_set():
            logger.info("waiting up to %.1fs for %d task(s)", grace_s, len(self.inflight))
            await wait_first(self.inflight.wait_empty(), self.hard_stop.wait(), timeout_s=grace_s)
        await self._stop_batches()

    async def _stop_batches(self) -> None:
        """Hand back whatever waits or still runs, then wait until every batch has reported."""
        self._hand_back_waiting()
        if len(self.inflight):
            logger.warning("handing back %d task(s) still running", len(self.inflight))
            for h in self.inflight.handles():
                h.request_stop(Outcome.HANDED_BACK, "runner shutting down")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _close(self) -> None:
        rid = self.settings.runner_id
        await self.artifacts.aclose()
        try:
            await hand_back_pending(self.redis, self.keys, self.streams, rid, now_ms())
            await delete_idle_consumer(self.redis, self.streams, rid)
        except RedisError as e:
            logger.warning("cannot hand back pending entries: %s", e)
        try:
            await unregister_runner(self.redis, self.keys, rid)
        except RedisError as e:
            logger.warning("cannot unregister runner %s (%s); its heartbeat will expire", rid, e)
        else:
            logger.info("runner %s stopped", rid)
