"""Live log follow over `GET /api/v1/ws` (broker/api/ws_logs.py) on the real app and Redis:
lines arrive as the worker ships them, only for runs the caller may see, bad messages get an
error frame and change nothing, unfollow stops the frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import redis.asyncio as aredis
from aiohttp import WSMsgType

from broker.keys import Keys
from ui.ws_support import new_user, open_socket, start_run

WF = {"name": "logs", "nodes": {"a": {"executor": "noop"}}}


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str
                 ) -> tuple[dict[str, Any], list[Any]]:
    """(the next frame of this type, the frames received before it)."""
    before: list[Any] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 15)
        assert msg.type == WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if isinstance(frame, dict) and frame.get("type") == kind:
            return frame, before
        before.append(frame)


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame of this type (hub deltas of the run are skipped)."""
    return (await _until(ws, kind))[0]


async def _ship(rds: aredis.Redis, keys: Keys, run: str, *lines: str, attempt: int = 1) -> None:
    for line in lines:  # as worker/logship.py writes them
        await rds.xadd(keys.log(run, "a"), {"attempt": str(attempt), "line": line})


async def test_lines_follow_live_and_stop_on_unfollow(
    make_client: Any, rds: aredis.Redis, keys: Keys
) -> None:
    client = await make_client()
    alice = await new_user(client, "alice")
    del client.session.headers["Authorization"]
    run = await start_run(client, alice, WF)
    await _ship(rds, keys, run, "before the follow")
    ws = await open_socket(client, alice)
    await ws.send_json({"op": "follow_log", "run": run, "task": "a"})
    first = await _next(ws, "log")
    assert (first["run"], first["task"]) == (run, "a")
    assert [ln["line"] for ln in first["lines"]] == ["before the follow"]
    await _ship(rds, keys, run, "step 1", "step 2", attempt=2)
    got: list[dict[str, Any]] = []
    while len(got) < 2:
        got += (await _next(ws, "log"))["lines"]
    assert [(ln["attempt"], ln["line"]) for ln in got] == [(2, "step 1"), (2, "step 2")]
    # from a position: only what came after it
    await ws.send_json({"op": "follow_log", "run": run, "task": "a", "after": got[0]["id"]})
    assert [ln["line"] for ln in (await _next(ws, "log"))["lines"]] == ["step 2"]
    await ws.send_json({"op": "unfollow_log", "run": run, "task": "a"})
    await asyncio.sleep(0.5)  # let a poll round pass
    await _ship(rds, keys, run, "after the unfollow")
    await asyncio.sleep(0.9)  # three poll rounds: a follow still running would send it now
    await ws.send_json({"op": "bogus"})  # a marker after that
    err, before = await _until(ws, "error")
    assert err["op"] == "bogus"
    assert not [f for f in before if isinstance(f, dict) and f.get("type") == "log"], before
    await ws.close()


async def test_another_users_run_and_bad_messages_get_errors(
    make_client: Any, rds: aredis.Redis, keys: Keys
) -> None:
    client = await make_client()
    alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
    del client.session.headers["Authorization"]
    run = await start_run(client, alice, WF)
    await _ship(rds, keys, run, "alice's secret")
    ws = await open_socket(client, bob)
    frames: list[dict[str, Any]] = []
    for bad, why in (
        ({"op": "follow_log", "run": run, "task": "a"}, f"no run '{run}'"),
        ({"op": "follow_log", "run": "r0nothere", "task": "a"}, "no run 'r0nothere'"),
        ({"op": "follow_log", "run": run}, "'task' must be a non-empty string"),
        ({"op": "follow_log", "run": run, "task": "a", "after": "x"}, "'after' must be"),
        ({"op": "dance"}, "unknown op"),
        ([1, 2], "must be a JSON object"),
    ):
        await ws.send_json(bad)
        err = await _next(ws, "error")
        assert why in err["message"], (bad, err)
        frames.append(err)
    await ws.send_str("{not json")
    assert "invalid JSON" in (await _next(ws, "error"))["message"]
    assert frames[0]["details"] == {"run": run}
    # nothing of alice's ever reached bob's socket; admin (and alice) can follow it
    admin = await open_socket(client, client.token)
    await admin.send_json({"op": "follow_log", "run": run, "task": "a"})
    assert [ln["line"] for ln in (await _next(admin, "log"))["lines"]] == ["alice's secret"]
    await admin.send_json({"op": "follow_log", "run": run, "task": "nope"})
    assert (await _next(admin, "error"))["message"] == f"no task 'nope' in run '{run}'"
    await ws.close()
    await admin.close()


async def test_a_socket_follows_at_most_eight_logs(make_client: Any) -> None:
    client = await make_client()
    wf = {"name": "many", "nodes": {f"t{i}": {"executor": "noop"} for i in range(9)}}
    run = await start_run(client, client.token, wf)
    ws = await open_socket(client, client.token)
    for i in range(8):
        await ws.send_json({"op": "follow_log", "run": run, "task": f"t{i}"})
    await ws.send_json({"op": "follow_log", "run": run, "task": "t0"})  # again: no new follow
    await ws.send_json({"op": "follow_log", "run": run, "task": "t8"})
    err = await _next(ws, "error")
    assert err["message"] == "at most 8 logs are followed at once per socket"
    assert err["details"] == {"following": 8, "run": run, "task": "t8"}
    await ws.send_json({"op": "unfollow_log", "run": run, "task": "t3"})
    await ws.send_json({"op": "follow_log", "run": run, "task": "t8"})  # room again
    await ws.send_json({"op": "dance"})
    err = await _next(ws, "error")
    assert err["op"] == "dance"  # the follow of t8 was accepted: no error before this one
    await ws.close()
