"""Browser end-to-end fixtures: a real broker + worker (tests/e2e/cluster.py) serving the built
webapp, driven by Debian's Chromium through Playwright.

Missing pieces FAIL these tests (never skip): the webapp build (scripts/build-webapp), the
Playwright package or /usr/bin/chromium (scripts/test installs all three).
Set DAGBROKER_UI_SCREENSHOTS=docs/screenshots to refresh the screenshots in the docs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.cluster import TOKENS, Cluster

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "webapp" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1440, "height": 900}


class Shots:
    """Screenshots: into docs/screenshots when asked (DAGBROKER_UI_SCREENSHOTS), else tmp."""

    def __init__(self, tmp: Path) -> None:
        target = os.environ.get("DAGBROKER_UI_SCREENSHOTS")
        self.dir = (ROOT / target) if target else tmp / "screenshots"
        self.dir.mkdir(parents=True, exist_ok=True)

    async def take(self, page: Any, name: str) -> Path:
        path = self.dir / f"{name}.png"
        await page.screenshot(path=str(path))
        return path


@pytest.fixture
def built_webapp() -> Path:
    if not (DIST / "index.html").is_file():
        pytest.fail("the webapp is not built: run scripts/build-webapp (scripts/test does)")
    return DIST


@pytest.fixture
async def browser(built_webapp: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is not installed: .venv/bin/pip install playwright")
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: apt-get install -y chromium chromium-driver")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
def cluster(redis_server: Any, prefix: str, tmp_path: Path, child_env: dict[str, str]
            ) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, prefix, tmp_path, child_env)
    yield c
    c.stop_all()


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


class UI:
    """A broker (+ worker) and a logged-in browser tab."""

    def __init__(self, cluster: Cluster, url: str, page: Any, token: str) -> None:
        self.cluster = cluster
        self.url = url
        self.page = page
        self.token = token
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def goto(self, path: str) -> None:
        await self.page.goto(self.url + path)


async def open_page(browser: Any, url: str, token: str | None) -> Any:
    context = await browser.new_context(viewport=VIEWPORT)
    if token:
        await context.add_init_script(
            f"window.sessionStorage.setItem('dagb.token', {token!r});")
    return await context.new_page()


@pytest.fixture
async def ui(cluster: Cluster, browser: Any) -> AsyncIterator[UI]:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=4)
    page = await open_page(browser, url, TOKENS[url])
    yield UI(cluster, url, page, TOKENS[url])
    await page.context.close()
