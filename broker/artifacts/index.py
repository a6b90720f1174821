"""The per-run artifact index: Redis hash `{prefix}:artifacts:{run}`.

Field `{task id}/{name}` → JSON `{"sha256", "size", "task", "name", "attempt", "created_at"}`
(created_at in ms). The worker writes a task's fields in one HSET after every upload of the
attempt succeeded and before it reports the completion, so a completion never announces an
output that is not stored. A retried task overwrites its own fields.

Read by the worker (staging a task's inputs), by conditions (`artifact:`), and by the
broker's download API (listing a run's artifacts; the bytes come from the store by sha256).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from redis.asyncio import Redis

    from broker.keys import Keys

_GLOB_CHARS = frozenset("*?[")


class ArtifactRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One stored output of one task attempt."""

    sha256: str
    size: int
    task: str  # task id (`sim[3]` for a matrix copy)
    name: str  # path relative to the task's workdir, `/`-separated
    attempt: int
    created_at: int = 0  # ms

    @property
    def field(self) -> str:
        return index_field(self.task, self.name)


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(ArtifactRecord)


def index_field(task: str, name: str) -> str:
    return f"{task}/{name}"


def is_glob(name: str) -> bool:
    return any(c in _GLOB_CHARS for c in name)


def decode_record(text: str | bytes) -> ArtifactRecord | None:
    """A field's value → record; None for a value that is not one (never raises)."""
    try:
        return _decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def pick_artifacts(
    records: Iterable[ArtifactRecord], name: str, prefer_tasks: Sequence[str] = ()
) -> list[ArtifactRecord]:
    """Pure: the records that `name` (a name or a glob) selects, one per distinct name.

    Records of `prefer_tasks` (the task's parents) win over the rest of the run; among
    equals the most recent wins. Sorted by name.
    """
    preferred = set(prefer_tasks)
    glob = is_glob(name)
    best: dict[str, ArtifactRecord] = {}
    for r in records:
        if not (fnmatch.fnmatchcase(r.name, name) if glob else r.name == name):
            continue
        rank = (r.task in preferred, r.created_at, r.attempt)
        cur = best.get(r.name)
        if cur is None or rank > (cur.task in preferred, cur.created_at, cur.attempt):
            best[r.name] = r
    return [best[n] for n in sorted(best)]


async def record_artifacts(
    redis: Redis, keys: Keys, run: str, records: Sequence[ArtifactRecord]
) -> None:
    """Add (or replace) a task attempt's outputs in the run's index, in one HSET."""
    if records:
        mapping = {r.field: _encode(r).decode() for r in records}
        await redis.hset(keys.artifacts(run), mapping=mapping)  # type: ignore[arg-type]


async def list_artifacts(redis: Redis, keys: Keys, run: str) -> list[ArtifactRecord]:
    """Every artifact of a run, sorted by (task, name)."""
    records = [
        rec async for _, value in redis.hscan_iter(keys.artifacts(run), count=1000)
        if (rec := decode_record(value)) is not None
    ]
    return sorted(records, key=lambda r: (r.task, r.name))


async def get_artifact(
    redis: Redis, keys: Keys, run: str, task: str, name: str
) -> ArtifactRecord | None:
    value = await redis.hget(keys.artifacts(run), index_field(task, name))
    return decode_record(value) if value is not None else None


async def find_artifacts(
    redis: Redis, keys: Keys, run: str, name: str, prefer_tasks: Sequence[str] = ()
) -> list[ArtifactRecord]:
    """What `name` (a name or a glob) resolves to in a run ([] if nothing).

    An exact name is looked up among `prefer_tasks` first (one HMGET); a glob, or a name
    none of them produced, scans the run's index.
    """
    if prefer_tasks and not is_glob(name):
        values = await redis.hmget(
            keys.artifacts(run), [index_field(t, name) for t in prefer_tasks]
        )
        found = [r for v in values if v is not None and (r := decode_record(v)) is not None]
        if found:
            return pick_artifacts(found, name, prefer_tasks)
    return pick_artifacts(await list_artifacts(redis, keys, run), name, prefer_tasks)
