"""TaskHandle: one read stream entry while this worker holds it, and how to stop it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.wire import Outcome, TaskMessage


class TaskHandle:
    """A task held by this worker. `request_stop` kills it (cancel order or shutdown).

    The first stop request wins: a task cancelled while the worker drains is reported
    cancelled, not handed back.

    `reported` is set just before the worker sends the entry's completion and acknowledgement:
    from then on the entry may vanish from the pending list because this worker acked it, so
    fencing (worker/fencing.py) must not mistake it for an entry the broker took back.
    """

    __slots__ = ("msg", "reported", "stop_outcome", "stop_reason", "_stop_event")

    def __init__(self, msg: TaskMessage) -> None:
        self.msg = msg
        self.stop_outcome: Outcome | None = None
        self.stop_reason = ""
        self.reported = False
        self._stop_event: asyncio.Event | None = None  # created on demand (noop tasks never)

    @property
    def key(self) -> tuple[str, str]:
        """(stream, entry id): unique among held entries."""
        return self.msg.stream, self.msg.msg_id

    def request_stop(self, outcome: Outcome, reason: str) -> None:
        if self.stop_outcome is not None:
            return
        self.stop_outcome = outcome
        self.stop_reason = reason
        if self._stop_event is not None:
            self._stop_event.set()

    def mark_reported(self) -> None:
        """Its outcome is being written: the worker itself acknowledges the entry."""
        self.reported = True

    def stop_event(self) -> asyncio.Event:
        """An Event set when a stop is requested (already set if it was)."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
            if self.stop_outcome is not None:
                self._stop_event.set()
        return self._stop_event
