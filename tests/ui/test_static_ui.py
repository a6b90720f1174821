"""The broker serves the built UI at / with an SPA fallback, never in place of an API route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.api import static_ui


def _fake_build(root: Path) -> Path:
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><div id="root"></div>')
    (dist / "assets" / "app-1234.js").write_text("console.log(1)")
    (root / "secret.txt").write_text("nope")
    return dist


async def test_built_ui_with_spa_fallback(make_client: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_ui, "CANDIDATES", (_fake_build(tmp_path / "web"),))
    client = await make_client()
    del client.session.headers["Authorization"]  # the shell and assets need no token
    for path in ("/", "/runs/rabc123", "/workflows/x/history", "/login"):
        r = await client.get(path)
        assert r.status == 200, path
        assert '<div id="root">' in await r.text()
        assert r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/assets/app-1234.js")
    assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
    for path in ("/assets/%2e%2e/secret.txt", "/assets/..%2fsecret.txt", "/assets/none.js"):
        r = await client.get(path)
        assert r.status in (401, 404) and "nope" not in await r.text(), path
    # API paths are never answered by the UI
    r = await client.get("/api/v1/nope")
    assert r.status in (401, 404) and "error" in await r.json()
    auth = {"Authorization": f"Bearer {client.token}"}
    r = await client.get("/api/v1/workflow/publish", headers=auth)
    assert r.status == 405
    r = await client.get("/api/v1/nope", headers=auth)
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await client.get("/elsewhere")  # not a UI page and no token
    assert r.status == 401


async def test_without_a_build_the_builtin_page(make_client: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_ui, "CANDIDATES", (tmp_path / "missing",))
    client = await make_client()
    del client.session.headers["Authorization"]
    r = await client.get("/")
    assert r.status == 200
    assert await r.text() == static_ui.BUILTIN_PAGE.read_text()
    r = await client.get("/runs/rabc123")
    assert r.status == 404 and "scripts/build-webapp" in (await r.json())["error"]["message"]
