"""Pure batch grouping: messages read together with the same batch key run in one executor call.

The broker's batch key already starts with the executor name; the executor is part of the
group key here too, so a batch never mixes executors even if a peer sends an empty key.
`worker --batch-max N` caps a batch at N tasks (1: every task its own executor call).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from broker.wire import TaskMessage

T = TypeVar("T")


def batch_key(msg: TaskMessage) -> tuple[str, str]:
    return msg.spec.executor, msg.batch


def group_by(items: Iterable[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """Groups in first-seen order; each group keeps its items' order."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def chunked(groups: Iterable[list[T]], size: int) -> list[list[T]]:
    """Each group split into runs of at most `size` items, in order (0: no limit).

    `worker --batch-max N`: 1 turns batching off (one executor call per task)."""
    if size <= 0:
        return list(groups)
    return [group[i : i + size] for group in groups for i in range(0, len(group), size)]


def group_batches(messages: Iterable[TaskMessage], batch_max: int = 0) -> list[list[TaskMessage]]:
    """Group messages by (executor, batch key), at most batch_max per group (0: no limit)."""
    return chunked(group_by(messages, batch_key), batch_max)
