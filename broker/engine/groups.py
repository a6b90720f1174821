"""Consumer groups: created idempotently; only the BUSYGROUP error is expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """XGROUP CREATE stream group 0 MKSTREAM, tolerating an existing group."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
