"""Pure batch grouping: messages read together with the same batch key run in one executor call.

The broker's batch key already starts with the executor name; the executor is part of the
group key here too, so a batch never mixes executors even if a peer sends an empty key.
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


def group_batches(messages: Iterable[TaskMessage]) -> list[list[TaskMessage]]:
    """Group messages by (executor, batch key)."""
    return group_by(messages, batch_key)
