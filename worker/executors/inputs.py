"""A task's inputs: its parents' results, read from their task hashes in one round trip."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.wire import TaskMessage


def decode_result(text: str | None) -> Any:
    """A `result` field: JSON text, or '' / missing for none. Non-JSON text is kept as text."""
    if not text:
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


async def fetch_inputs(redis: Redis, keys: Keys, msg: TaskMessage) -> dict[str, Any]:
    """{parent_id: parent_result} for every parent of the task."""
    if not msg.parents:
        return {}
    pipe = redis.pipeline(transaction=False)
    for parent in msg.parents:
        pipe.hget(keys.task(msg.run, parent), "result")
    values = await pipe.execute()
    return {p: decode_result(v) for p, v in zip(msg.parents, values, strict=True)}
