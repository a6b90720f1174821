"""Messages exchanged through Redis streams between broker and workers.

Stream entries are flat field/value maps so that `redis-cli XRANGE` shows them readably;
these Structs are their typed form. New fields always get defaults (older peers omit them).
Imported by both the broker and the worker; depends only on msgspec and the stdlib.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from broker.spec import TaskSpec, task_spec_decoder

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.decode


class TaskState(enum.StrEnum):
    """Lifecycle of one task (docs/redis-keys.md#task-states)."""

    PENDING = "pending"  # waiting for dependencies
    READY = "ready"  # in dagb:ready:{class}
    DISPATCHED = "dispatched"  # in dagb:q:{class}, not yet started by a worker
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"  # in dagb:delayed until its backoff elapses
    WAITING = "waiting"  # an event task: in dagb:wait:{owner}/{key} until the key is pushed
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
)


class RunState(enum.StrEnum):
    """Lifecycle of a run."""

    EXPANDING = "expanding"  # being written; nothing of it is dispatched yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_RUN_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


class Outcome(enum.StrEnum):
    """What a worker reports for one task attempt."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the task failed (exit code, timeout, exception); may be retried
    LOST = "lost"  # the worker died or lost the task; retried without using a retry
    HANDED_BACK = "handed_back"  # the worker is draining and never finished it
    CANCELLED = "cancelled"  # killed on a cancel order
    SKIPPED = "skipped"  # the message was stale (task cancelled or re-dispatched)


class TaskMessage(msgspec.Struct, kw_only=True, frozen=True):
    """One dispatched task, as read by a worker from `dagb:q:{class}`."""

    msg_id: str
    stream: str
    run: str
    node: str
    attempt: int
    tpl: str
    batch: str
    spec: TaskSpec
    vars: dict[str, Any] | None = None
    params: dict[str, Any] = {}
    parents: list[str] = []
    priority: int = 0

    @classmethod
    def from_fields(cls, stream: str, msg_id: str, fields: dict[str, str]) -> TaskMessage:
        """Decode the flat stream entry written by dispatch (lib.lua `dispatch_class`)."""
        parents = fields.get("parents", "")
        vars_text = fields.get("vars", "")
        return cls(
            msg_id=msg_id,
            stream=stream,
            run=fields["run"],
            node=fields["node"],
            attempt=int(fields["attempt"]),
            tpl=fields["tpl"],
            batch=fields.get("batch", ""),
            spec=task_spec_decoder.decode(fields["spec"]),
            vars=_json_decode(vars_text) if vars_text else None,
            params=_json_decode(fields["params"]) if fields.get("params") else {},
            parents=parents.split(",") if parents else [],
            priority=int(fields.get("priority", "0")),
        )


class Completion(msgspec.Struct, kw_only=True, frozen=True):
    """A worker's report of one attempt, appended to `dagb:done`."""

    run: str
    node: str
    attempt: int
    outcome: Outcome
    runner: str
    exit_code: int | None = None
    reason: str = ""
    result: Any = None  # small JSON value handed to dependents
    tail: str = ""  # last lines of the log
    started_at_ms: int = 0
    finished_at_ms: int = 0

    def to_fields(self) -> dict[str, str]:
        """Flat form for XADD (and the order complete.lua reads them in)."""
        return {
            "run": self.run,
            "node": self.node,
            "attempt": str(self.attempt),
            "outcome": self.outcome.value,
            "runner": self.runner,
            "exit_code": "" if self.exit_code is None else str(self.exit_code),
            "reason": self.reason,
            "result": "" if self.result is None else _json_encode(self.result).decode(),
            "tail": self.tail,
            "started_at": str(self.started_at_ms),
            "finished_at": str(self.finished_at_ms),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Completion:
        code = fields.get("exit_code", "")
        result = fields.get("result", "")
        return cls(
            run=fields["run"],
            node=fields["node"],
            attempt=int(fields["attempt"]),
            outcome=Outcome(fields["outcome"]),
            runner=fields.get("runner", ""),
            exit_code=int(code) if code else None,
            reason=fields.get("reason", ""),
            result=_json_decode(result) if result else None,
            tail=fields.get("tail", ""),
            started_at_ms=int(fields.get("started_at", "0") or 0),
            finished_at_ms=int(fields.get("finished_at", "0") or 0),
        )


# The order of fields complete.lua expects for each completion in ARGV.
COMPLETION_FIELDS = (
    "run",
    "node",
    "attempt",
    "outcome",
    "runner",
    "exit_code",
    "reason",
    "result",
    "tail",
    "started_at",
    "finished_at",
)


# One entry of a runner's `software` list: NAME or NAME=VERSION, no spaces or commas
# (`--software openfoam=11`; the REST registration checks the same).
SOFTWARE_PATTERN = r"^[^\s,=]{1,100}(?:=[^\s,]{1,100})?$"


class RunnerInfo(msgspec.Struct, kw_only=True):
    """What a runner advertises in `dagb:runner:{id}`."""

    id: str
    host: str
    pid: int
    classes: list[str]
    slots: int
    busy: int = 0  # tasks running
    # resources offered (None: an older worker, which fits anything) and free at the last beat
    cores: float | None = None
    memory_mb: int | None = None
    gpus: int | None = None
    free_cores: float | None = None
    free_memory_mb: int | None = None
    free_gpus: int | None = None
    executors: list[str] = []
    labels: dict[str, str] = {}
    software: list[str] = []  # NAME or NAME=VERSION (SOFTWARE_PATTERN)
    state: str = "active"  # active | draining | registered (through the REST API, not started)
    started_at_ms: int = 0
    version: str = ""
