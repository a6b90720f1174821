"""Every Redis key name, built in one place (docs/redis-keys.md documents them).

Imported by both the broker and the worker; depends on nothing but the stdlib.
"""

from __future__ import annotations

WORKER_GROUP = "workers"
BROKER_GROUP = "brokers"
DEFAULT_PREFIX = "dagb"


class Keys:
    """Key builder for one prefix. ``Keys("dagb").task("r1", "a")`` → ``dagb:task:r1:a``."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    # -- runs and tasks -------------------------------------------------
    def run(self, run: str) -> str:
        return f"{self.prefix}:run:{run}"

    def task(self, run: str, node: str) -> str:
        return f"{self.prefix}:task:{run}:{node}"

    def task_prefix(self, run: str) -> str:
        """Prefix of every task hash of a run (Lua appends the node id)."""
        return f"{self.prefix}:task:{run}:"

    def spec(self, run: str) -> str:
        return f"{self.prefix}:spec:{run}"

    def messages(self, run: str) -> str:
        """List of a run's notices (JSON: ts, task, text), newest last, capped at 200."""
        return f"{self.prefix}:msgs:{run}"

    def tasks(self, run: str) -> str:
        """List of a run's task ids in expansion (topological) order."""
        return f"{self.prefix}:tasks:{run}"

    def staging(self, run: str, rclass: str) -> str:
        """Roots of a run being expanded; moved to the ready set only when complete."""
        return f"{self.prefix}:staging:{run}:{rclass}"

    def runs(self) -> str:
        """Sorted set of run ids, score = creation time (ms)."""
        return f"{self.prefix}:runs"

    def runs_of(self, owner: str) -> str:
        """Sorted set of one owner's run ids, score = creation time (ms)."""
        return f"{self.prefix}:runs:owner:{owner}"

    def expanding(self) -> str:
        """Sorted set of runs being expanded, score = last progress of their writer (ms)."""
        return f"{self.prefix}:runs:expanding"

    def active_runs(self) -> str:
        """Set of runs that are expanding or running."""
        return f"{self.prefix}:runs:active"

    # -- queues ---------------------------------------------------------
    def ready(self, rclass: str) -> str:
        return f"{self.prefix}:ready:{rclass}"

    def ready_prefix(self) -> str:
        return f"{self.prefix}:ready:"

    def unfit(self, rclass: str) -> str:
        """Ready tasks parked because they need more than the largest live runner of the class
        offers (same member and score as in the ready set; the task's state stays `ready`)."""
        return f"{self.prefix}:unfit:{rclass}"

    def fit(self, rclass: str) -> str:
        """Hash `cores`, `memory_mb`, `gpus`: the largest offer of the class's live runners (a
        missing field: no limit). Absent when no live runner serves the class."""
        return f"{self.prefix}:fit:{rclass}"

    def queue(self, rclass: str) -> str:
        return f"{self.prefix}:q:{rclass}"

    def queue_prefix(self) -> str:
        return f"{self.prefix}:q:"

    def classes(self) -> str:
        """Set of every resource class that has ever held a task."""
        return f"{self.prefix}:classes"

    def capacity(self) -> str:
        """Hash class → free-slot budget advertised by live runners (written by the broker)."""
        return f"{self.prefix}:capacity"

    def seq(self) -> str:
        """Counter giving each ready task its FIFO position."""
        return f"{self.prefix}:seq"

    def done(self) -> str:
        return f"{self.prefix}:done"

    def delayed(self) -> str:
        return f"{self.prefix}:delayed"

    def events(self) -> str:
        return f"{self.prefix}:events"

    # -- runners --------------------------------------------------------
    def runners(self) -> str:
        """Set of registered runner ids."""
        return f"{self.prefix}:runners"

    def registrations(self) -> str:
        """Set of runner ids registered through the REST API that no worker has taken yet."""
        return f"{self.prefix}:runners:registered"

    def runner(self, runner: str) -> str:
        return f"{self.prefix}:runner:{runner}"

    def heartbeat(self, runner: str) -> str:
        return f"{self.prefix}:runner:{runner}:hb"

    def control(self, runner: str) -> str:
        return f"{self.prefix}:ctl:{runner}"

    def log(self, run: str, node: str) -> str:
        return f"{self.prefix}:log:{run}:{node}"

    def artifacts(self, run: str) -> str:
        """Hash `{task}/{name}` → JSON record of a stored output (broker.artifacts.index)."""
        return f"{self.prefix}:artifacts:{run}"

    # -- events (docs/events-and-timers.md); a key lives in its owner's namespace ----------
    def waiting(self, owner: str, key: str) -> str:
        """Set of `{run}:{node}` event tasks waiting for `key` of `owner`."""
        return f"{self.prefix}:wait:{owner}/{key}"

    def waiting_keys(self) -> str:
        """Set of `{owner}/{key}` that have (or recently had) waiting tasks."""
        return f"{self.prefix}:waits"

    def event_last(self, owner: str, key: str) -> str:
        """Hash payload, id, ts of the last push of a key, kept for its retention time."""
        return f"{self.prefix}:evlast:{owner}/{key}"

    def event_seen(self, owner: str, key: str, push_id: str) -> str:
        """A push id already applied (a repeated push with that id changes nothing)."""
        return f"{self.prefix}:evseen:{owner}/{key}:{push_id}"

    def pushes(self) -> str:
        """List (capped) of recent pushes as JSON, newest first."""
        return f"{self.prefix}:pushes"

    def subscribers(self, owner: str, key: str) -> str:
        """Set of `owner`'s workflow names whose `on_event` lists `key`."""
        return f"{self.prefix}:on_event:{owner}/{key}"

    # -- coordination ---------------------------------------------------
    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def brokers(self) -> str:
        """Hash broker id → last-seen ms, for `status`."""
        return f"{self.prefix}:brokers"
