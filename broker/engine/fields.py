"""Small Redis helpers shared by the broker's background loops."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import WatchError

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)


async def set_field_if_exists(redis: Redis, key: str, field: str, value: str | int) -> bool:
    """HSET a field only on a hash that still exists: a loop finishing its work on a run that
    was deleted meanwhile must not resurrect the run's hash with one field in it."""
    async with redis.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            if not await pipe.exists(key):
                return False
            pipe.multi()
            pipe.hset(key, field, value)
            await pipe.execute()
            return True
        except WatchError:
            logger.info("%s changed while setting %s; left for the next pass", key, field)
            return False
