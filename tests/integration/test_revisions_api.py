"""Workflow revisions over the REST API: history, diff, racing edits, delete, per-owner names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

V1 = {
    "name": "diamond",
    "nodes": {
        "a": {"command": "echo a"},
        "b": {"command": "echo b", "after": ["a"]},
        "c": {"command": "echo c", "after": ["a"]},
        "d": {"command": "echo d", "after": ["b", "c"]},
    },
}
V2 = {  # b changed (command, retries), d removed, e added
    "name": "diamond",
    "nodes": {
        "a": {"command": "echo a"},
        "b": {"command": "echo B", "after": ["a"], "retries": 2},
        "c": {"command": "echo c", "after": ["a"]},
        "e": {"command": "echo e", "after": ["c"]},
    },
}
V3 = {**V2, "description": "third"}


class Api:
    """Calls as one user (the admin client's session, with another user's token)."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, headers: Any = None,
                   **query: Any) -> tuple[int, Any]:
        r = await self.client.request(method, f"/api/v1/{path}", json=body, params=query or None,
                                      headers={**self.headers, **(headers or {})})
        return r.status, await r.json()

    async def publish(self, doc: Any, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", "workflow/publish", doc, **kw)


@pytest.fixture
async def users(make_client: Any) -> dict[str, Api]:
    client = await make_client()
    out = {"admin": Api(client, client.token)}
    for uid in ("alice", "bob"):
        r = await client.post("/api/v1/users", json={"id": uid})
        assert r.status == 201, await r.text()
        out[uid] = Api(client, (await r.json())["token"])
    return out


async def test_history_and_diff(users: dict[str, Api]) -> None:
    alice = users["alice"]
    revs = []
    for doc in (V1, V2, V3):
        status, out = await alice.publish(doc)
        assert status == 201 and out["changed"], out
        revs.append(out["revision"])
    assert out["message"] == "publish diamond: changed description"

    status, hist = await alice.call("GET", "workflow/history", name="diamond")
    assert status == 200 and hist["next"] is None
    entries = hist["revisions"]
    assert [e["revision"] for e in entries] == revs[::-1]
    assert [e["author"] for e in entries] == ["alice"] * 3
    assert entries[2]["message"] == "publish diamond: +4 nodes (a, b, c, d)"
    assert entries[1]["message"] == "publish diamond: +1 node (e), -1 (d), ~1 changed (b)"
    assert (entries[1]["added"], entries[1]["removed"], entries[1]["changed"]) == (
        ["e"], ["d"], ["b"])
    assert entries[0]["added"] == entries[0]["removed"] == entries[0]["changed"] == []
    assert all(e["committed_at"] > 1e12 and not e["deleted"] for e in entries)

    # pagination: a cursor continues where the page stopped
    _, page1 = await alice.call("GET", "workflow/history", name="diamond", limit=2)
    assert len(page1["revisions"]) == 2 and page1["next"] == revs[0]
    _, page2 = await alice.call("GET", "workflows/diamond/history", cursor=page1["next"])
    assert [e["revision"] for e in page2["revisions"]] == [revs[0]] and page2["next"] is None

    status, d = await alice.call("GET", "workflow/diff", name="diamond",
                                 **{"from": revs[0][:7], "to": revs[1]})
    assert status == 200 and (d["from"], d["to"]) == (revs[0], revs[1])
    assert d["added"] == ["e"] and d["removed"] == ["d"]
    assert d["changed"] == {"b": {"command": {"old": "echo b", "new": "echo B"},
                                  "retries": {"old": None, "new": 2}}}
    _, d = await alice.call("GET", "workflow/diff", name="diamond")  # parent of latest → latest
    assert d["from"] == revs[1] and d["to"] == revs[2]
    assert d["workflow"] == {"description": {"old": None, "new": "third"}} and not d["changed"]

    # get at any revision, by full or short sha; the ETag is the revision
    r = await alice.client.get("/api/v1/workflow/get", params={"name": "diamond",
                               "revision": revs[0][:7]}, headers=alice.headers)
    assert (await r.json())["workflow"] == V1 and r.headers["ETag"] == f'"{revs[0]}"'
    status, err = await alice.call("GET", "workflow/get", name="diamond", revision=revs[0][:6])
    assert status == 400 and "revision" in err["error"]["message"]
    status, err = await alice.call("GET", "workflow/get", name="diamond", revision="0" * 40)
    assert status == 404 and "no revision" in err["error"]["message"]


async def test_racing_edits_exactly_one_wins(users: dict[str, Api]) -> None:
    alice = users["alice"]
    _, first = await alice.publish(V1)
    base = first["revision"]
    left = alice.publish(V2, headers={"If-Match": f'"{base}"'})
    right = alice.publish({"workflow": V3, "base": base[:7], "message": "mine"})
    (s1, o1), (s2, o2) = await asyncio.gather(left, right)
    assert sorted([s1, s2]) == [201, 409], (o1, o2)
    won, lost = (o1, o2) if s1 == 201 else (o2, o1)
    err = lost["error"]
    assert err["code"] == "conflict" and err["details"]["current"] == won["revision"]
    assert err["details"]["diff"]["added"] == ["e"]  # base → current
    _, hist = await alice.call("GET", "workflow/history", name="diamond")
    # the loser wrote nothing
    assert [e["revision"] for e in hist["revisions"]] == [won["revision"], base]
    # a stale base stays stale; the current one is accepted
    status, _ = await alice.publish({"workflow": V1, "base": base})
    assert status == 409
    status, out = await alice.publish({"workflow": V1, "base": won["revision"]})
    assert status == 201 and out["changed"]
    status, err = await alice.publish({"workflow": V1, "base": "abc"})
    assert status == 400


async def test_delete_keeps_history_for_its_owner_only(users: dict[str, Api]) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    _, a1 = await alice.publish(V1)
    _, b1 = await bob.publish(V2)  # same name, another owner: another workflow
    assert a1["revision"] != b1["revision"] and (a1["owner"], b1["owner"]) == ("alice", "bob")
    _, got = await bob.call("GET", "workflow/get", name="diamond")
    assert got["workflow"] == V2

    status, gone = await alice.call("POST", "workflow/delete", {"name": "diamond"})
    assert status == 200 and gone["deleted"]
    _, listed = await alice.call("GET", "workflows")
    assert listed["workflows"] == []
    _, listed = await bob.call("GET", "workflows")
    assert listed["workflows"] == ["diamond"]
    status, err = await alice.call("GET", "workflow/get", name="diamond")
    assert status == 404 and "deleted" in err["error"]["message"]
    status, _ = await alice.call("POST", "workflow/execute", {"name": "diamond"})
    assert status == 404
    status, hist = await alice.call("GET", "workflow/history", name="diamond")
    assert status == 200
    assert [(e["revision"], e["deleted"]) for e in hist["revisions"]] == [
        (gone["revision"], True), (a1["revision"], False)]
    assert hist["revisions"][0]["removed"] == ["a", "b", "c", "d"]
    status, old = await alice.call("GET", "workflow/get", name="diamond", revision=a1["revision"])
    assert status == 200 and old["workflow"] == V1
    status, run = await alice.call("POST", "workflow/execute",
                                   {"name": "diamond", "revision": a1["revision"]})
    assert status == 201, run
    status, again = await alice.call("POST", "workflow/delete", {"name": "diamond"})
    assert status == 404

    # someone else's workflow answers exactly like a missing one
    for path, kw in (("workflow/history", {}), ("workflow/get", {}), ("workflow/diff", {}),
                     ("workflow/get", {"revision": a1["revision"]})):
        s_other, other = await bob.call("GET", path, name="diamond", owner="alice", **kw)
        s_none, none = await bob.call("GET", path, name="nosuch", owner="alice", **kw)
        assert s_other == s_none == 404, (path, other)
        assert other["error"]["message"].replace("diamond", "X") == \
            none["error"]["message"].replace("nosuch", "X")
    status, _ = await bob.call("POST", "workflow/delete", {"name": "diamond", "owner": "alice"})
    assert status == 404
    _, listed = await bob.call("GET", "workflows", owner="alice")
    assert listed["workflows"] == []
    # bob's own diamond is untouched; an admin reaches alice's with an explicit owner
    _, hist = await bob.call("GET", "workflow/history", name="diamond")
    assert [e["revision"] for e in hist["revisions"]] == [b1["revision"]]
    status, hist = await admin.call("GET", "workflow/history", name="diamond", owner="alice")
    assert status == 200 and len(hist["revisions"]) == 2
