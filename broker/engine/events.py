"""Event keys (docs/events-and-timers.md): pushes, waiting tasks, recent pushes, triggers.

A key lives in its owner's namespace. `data-ready` pushed for alice completes only alice's
tasks waiting for `data-ready` (deliver_event.lua) and starts only alice's workflows whose
`on_event` lists it (as alice). Nothing here decides who may push: the API does.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

import msgspec

from broker.core.expand import expand
from broker.core.parse import parse_workflow
from broker.engine.lifecycle import add_messages
from broker.errors import BrokerError, NotFound

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.engine.engine import Engine
    from broker.engine.scripts import Scripts
    from broker.keys import Keys
    from broker.policy import Policy
    from broker.revisions import RevisionStore
    from broker.spec import Workflow

logger = logging.getLogger(__name__)

DEFAULT_RETAIN_S = 60.0  # a task that starts waiting this soon after a push still gets it
SEEN_MS = 24 * 3600 * 1000  # a push id is remembered this long (a repeat changes nothing)
RECENT = 200  # pushes kept in dagb:pushes
LIST_LIMIT = 500  # waiting tasks listed per key


def new_push_id() -> str:
    return "p" + secrets.token_hex(8)


class Pushed(msgspec.Struct, kw_only=True):
    """The outcome of one push."""

    id: str
    owner: str
    key: str
    delivered: int  # waiting tasks it completed (for a duplicate: what the first push did)
    duplicate: bool = False
    runs: list[str] = []  # runs started by `on_event` subscriptions
    errors: list[dict[str, str]] = []  # subscribed workflows that could not start


class Events:
    """Redis side of event keys: deliver, list waits and recent pushes, subscriptions."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts

    async def deliver(
        self, owner: str, key: str, payload: Any, *, push_id: str, retain_s: float
    ) -> Pushed:
        """Complete every task of `owner` waiting for `key`; idempotent on `push_id`."""
        text = json.dumps(payload, separators=(",", ":"))
        delivered, duplicate, _ = await self.scripts.deliver_event(
            owner,
            key,
            text,
            push_id,
            retain_ms=int(retain_s * 1000),
            seen_ms=SEEN_MS,
            recent=RECENT,
        )
        return Pushed(id=push_id, owner=owner, key=key, delivered=delivered, duplicate=duplicate)

    async def waiting(self, owner: str | None) -> list[dict[str, Any]]:
        """Per key (of `owner`, or of everyone): the tasks waiting for it, oldest first."""
        out: list[dict[str, Any]] = []
        for ns in sorted(await self.redis.smembers(self.keys.waiting_keys())):
            who, _, key = ns.partition("/")
            if owner is not None and who != owner:
                continue
            members = sorted(await self.redis.smembers(self.keys.waiting(who, key)))[:LIST_LIMIT]
            if not members:
                continue
            tasks = []
            for m in members:
                run, _, node = m.partition(":")
                since = await self.redis.hget(self.keys.task(run, node), "waiting_since")
                tasks.append({"run": run, "node": node, "since": int(since or 0)})
            tasks.sort(key=lambda t: t["since"])
            out.append({"owner": who, "key": key, "tasks": tasks})
        return out

    async def recent(self, owner: str | None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest pushes (newest first) of `owner`, or of everyone."""
        rows = [json.loads(r) for r in await self.redis.lrange(self.keys.pushes(), 0, -1)]
        return [r for r in rows if owner is None or r.get("owner") == owner][:limit]

    async def retained(self, owner: str, key: str) -> dict[str, Any] | None:
        """The last push of a key while it is retained: {id, ts, payload}."""
        h = await self.redis.hgetall(self.keys.event_last(owner, key))
        if not h:
            return None
        payload = json.loads(h["payload"])
        return {"id": h.get("id", ""), "ts": int(h.get("ts", 0)), "payload": payload}

    async def subscribe(self, owner: str, name: str, event_keys: list[str]) -> None:
        """Record that `owner`'s workflow `name` starts on each of `event_keys` (at publish).

        Entries are removed lazily: a push that finds the latest revision no longer lists
        the key (or the workflow deleted) drops the subscription.
        """
        if not event_keys:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key in set(event_keys):
            pipe.sadd(self.keys.subscribers(owner, key), name)
        await pipe.execute()

    async def subscribers(self, owner: str, key: str) -> list[str]:
        return sorted(await self.redis.smembers(self.keys.subscribers(owner, key)))

    async def unsubscribe(self, owner: str, key: str, name: str) -> None:
        await self.redis.srem(self.keys.subscribers(owner, key), name)


class Launcher:
    """Starts a run of the latest revision of an owner's workflow, as that owner
    (event triggers and timers; the same steps as `POST /workflow/execute`)."""

    def __init__(self, engine: Engine, revisions: RevisionStore, policy: Policy) -> None:
        self.engine = engine
        self.revisions = revisions
        self.policy = policy

    async def load(self, owner: str, name: str) -> tuple[Workflow, str]:
        text, sha = await self.revisions.load(name, owner=owner)
        return parse_workflow(text), sha

    async def start(
        self,
        owner: str,
        wf: Workflow,
        sha: str,
        params: dict[str, Any],
        *,
        trigger: str,
        run_id: str | None = None,
    ) -> str:
        """Expand and submit; `run_id` fixed by the caller makes a retried start detectable."""
        wf, notices = self.policy.substitute(wf)
        self.policy.check(wf)
        engine = self.engine
        plan = expand(wf, params, None, max_tasks=engine.settings.max_tasks)
        meta = {"workflow": wf.name, "revision": sha, "owner": owner, "trigger": trigger}
        run = await engine.submit(plan, meta, run_id=run_id)
        await add_messages(engine.redis, engine.keys, run, notices)
        logger.info("run %s of %s/%s started by %s", run, owner, wf.name, trigger)
        return run

    async def launch(
        self, owner: str, name: str, params: dict[str, Any], *, trigger: str,
        run_id: str | None = None,
    ) -> str:
        wf, sha = await self.load(owner, name)
        return await self.start(owner, wf, sha, params, trigger=trigger, run_id=run_id)


async def push(
    events: Events,
    launcher: Launcher,
    owner: str,
    key: str,
    payload: Any,
    *,
    push_id: str | None = None,
    retain_s: float = DEFAULT_RETAIN_S,
) -> Pushed:
    """Deliver a push, then (first delivery of this id only) start the subscribed workflows."""
    out = await events.deliver(
        owner, key, payload, push_id=push_id or new_push_id(), retain_s=retain_s
    )
    if not out.duplicate:
        out.runs, out.errors = await start_subscribed(events, launcher, owner, key, payload)
    return out


async def start_subscribed(
    events: Events, launcher: Launcher, owner: str, key: str, payload: Any
) -> tuple[list[str], list[dict[str, str]]]:
    """Run every workflow of `owner` whose latest revision has `key` in `on_event`."""
    runs: list[str] = []
    errors: list[dict[str, str]] = []
    for name in await events.subscribers(owner, key):
        try:
            wf, sha = await launcher.load(owner, name)
        except NotFound:
            await events.unsubscribe(owner, key, name)  # deleted since it subscribed
            continue
        if key not in wf.on_event:
            await events.unsubscribe(owner, key, name)  # a later revision dropped the key
            continue
        params = {"event": payload} if "event" in wf.params else {}
        try:
            runs.append(await launcher.start(owner, wf, sha, params, trigger=f"event:{key}"))
        except BrokerError as e:
            logger.warning("on_event %s: workflow %s/%s did not start: %s", key, owner, name, e)
            errors.append({"workflow": name, "error": e.message})
    return runs, errors
