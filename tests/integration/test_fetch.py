"""Publish by URL against a real local HTTP server: conditional GET, 304, errors naming the URL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

WF = {"name": "remote", "nodes": {"a": {"command": "echo a"}, "b": {"after": ["a"],
                                                                   "command": "echo b"}}}


class Origin:
    """Serves one document with an ETag; answers 304 to a matching If-None-Match."""

    def __init__(self) -> None:
        self.doc: Any = WF
        self.version = 1
        self.seen: list[dict[str, str]] = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append({k: v for k, v in request.headers.items()
                          if k in ("If-None-Match", "If-Modified-Since")})
        if self.status != 200:
            return web.Response(status=self.status, text="nope")
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.json_response(self.doc, headers={
            "ETag": etag, "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 40_000 + b"1]", content_type="application/json")


@pytest.fixture
async def origin(aiohttp_server: Any) -> tuple[Origin, TestServer]:
    o = Origin()
    app = web.Application()
    app.router.add_get("/wf.json", o.handle)
    app.router.add_get("/big.json", o.big)
    return o, await aiohttp_server(app)


@pytest.fixture
async def client(make_client: Any) -> TestClient:
    return await make_client(max_body_bytes=64 * 1024)


async def publish(client: TestClient, body: Any) -> tuple[int, Any]:
    r = await client.post("/api/v1/workflow/publish", json=body)
    return r.status, await r.json()


async def test_conditional_get_304_keeps_the_revision(
    client: TestClient, origin: tuple[Origin, TestServer]
) -> None:
    o, server = origin
    url = str(server.make_url("/wf.json"))
    status, first = await publish(client, {"url": url})
    assert status == 201 and first["changed"] and first["fetch_status"] == 200, first
    assert first["message"].endswith(f"Source: {url}")
    assert o.seen[-1] == {}

    status, second = await publish(client, {"url": url})
    assert status == 201 and second["fetch_status"] == 304
    assert second["revision"] == first["revision"] and not second["changed"]
    assert o.seen[-1] == {"If-None-Match": '"v1"',
                          "If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}

    o.version = 2  # same content under a new ETag: 200, but no new commit
    status, third = await publish(client, {"url": url})
    assert third["fetch_status"] == 200 and third["revision"] == first["revision"]
    assert not third["changed"]

    o.version, o.doc = 3, {**WF, "description": "edited upstream"}
    status, fourth = await publish(client, {"url": url, "message": "sync"})
    assert status == 201 and fourth["changed"] and fourth["revision"] != first["revision"]
    r = await client.get("/api/v1/workflow/history", params={"name": "remote"})
    assert [e["message"] for e in (await r.json())["revisions"]][0] == f"sync\n\nSource: {url}"


async def test_fetch_errors_name_the_url(
    client: TestClient, origin: tuple[Origin, TestServer], unused_tcp_port: int
) -> None:
    o, server = origin
    url = str(server.make_url("/wf.json"))
    o.status = 404
    status, err = await publish(client, {"url": url})
    assert status == 502 and err["error"]["code"] == "fetch_failed"
    assert url in err["error"]["message"] and err["error"]["details"] == {
        "url": url, "status": 404}
    dead = f"http://127.0.0.1:{unused_tcp_port}/wf.json"
    status, err = await publish(client, {"url": dead})
    assert status == 502 and dead in err["error"]["message"]
    status, err = await publish(client, {"url": str(server.make_url("/big.json"))})
    assert status == 413 and err["error"]["details"]["limit"] == 64 * 1024
    status, err = await publish(client, {"url": "file:///etc/passwd"})
    assert status == 400 and err["error"]["details"]["field"] == "url"
    status, err = await publish(client, {"url": url, "workflow": WF})
    assert status == 400
    o.status, o.doc = 200, {"name": "remote", "nodes": {"a": {"after": ["ghost"]}}}
    status, err = await publish(client, {"url": url})
    assert status == 422 and err["error"]["details"]["url"] == url
    r = await client.get("/api/v1/workflows")
    assert (await r.json())["workflows"] == []  # nothing was committed
    assert json.dumps(err).count("Traceback") == 0
