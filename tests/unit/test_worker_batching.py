"""Pure batch grouping of the messages a worker read together."""

from __future__ import annotations

from broker.spec import TaskSpec
from broker.wire import TaskMessage
from worker.batching import batch_key, chunked, group_batches, group_by


def msg(node: str, batch: str, executor: str = "shell") -> TaskMessage:
    return TaskMessage(
        msg_id=f"1-{node}", stream="dagb:q:cpu", run="r", node=node, attempt=1, tpl=node,
        batch=batch, spec=TaskSpec(node=node, executor=executor, command="true"),
    )


def nodes(groups: list[list[TaskMessage]]) -> list[list[str]]:
    return [[m.node for m in g] for g in groups]


def test_groups_by_batch_key_in_first_seen_order() -> None:
    got = group_batches([msg("a", "k1"), msg("b", "k2"), msg("c", "k1"), msg("d", "k3"),
                         msg("e", "k2")])
    assert nodes(got) == [["a", "c"], ["b", "e"], ["d"]]


def test_executor_is_part_of_the_key() -> None:
    got = group_batches([msg("a", "", "shell"), msg("b", "", "noop"), msg("c", "", "shell")])
    assert nodes(got) == [["a", "c"], ["b"]]
    assert batch_key(msg("x", "k", "python")) == ("python", "k")


def test_empty_and_single() -> None:
    assert group_batches([]) == []
    assert nodes(group_batches([msg("a", "k")])) == [["a"]]


def test_every_message_lands_in_exactly_one_group() -> None:
    messages = [msg(f"n{i}", f"k{i % 7}", ("shell", "noop")[i % 2]) for i in range(100)]
    groups = group_batches(messages)
    flat = [m.node for g in groups for m in g]
    assert sorted(flat) == sorted(m.node for m in messages)
    for g in groups:
        assert len({batch_key(m) for m in g}) == 1


def test_group_by_is_generic() -> None:
    assert group_by([1, 2, 3, 4, 5], lambda n: n % 2) == [[1, 3, 5], [2, 4]]


def test_batch_max_splits_groups_in_order() -> None:
    messages = [msg(f"n{i}", "k1" if i < 5 else "k2") for i in range(7)]
    assert nodes(group_batches(messages, batch_max=2)) == [
        ["n0", "n1"], ["n2", "n3"], ["n4"], ["n5", "n6"],
    ]
    assert nodes(group_batches(messages, batch_max=1)) == [[f"n{i}"] for i in range(7)]
    assert nodes(group_batches(messages, batch_max=0)) == nodes(group_batches(messages))
    assert chunked([[1, 2, 3]], 5) == [[1, 2, 3]]
