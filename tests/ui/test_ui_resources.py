"""The UI shows why a task waits, against a real broker and real workers: a runner's offer and
what is free, the parked task and its reason on the dashboard, and on the run's graph and task
panel a `waiting` badge that appears live (parking sends no delta) and goes once a big enough
worker runs the task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from e2e.cluster import TOKENS, Cluster, publish_and_run, wait_run
from playwright.async_api import expect

from ui.conftest import UI, Shots, open_page

LIVE_S = 45_000  # ms: deadline for a state to show up in the page (2 busy cores)
REASON = "needs 4 cores; the largest live runner of class 'cpu' offers 1 core"


def sized(gate: Path) -> dict[str, Any]:
    """`big` (4 cores) and `small` become ready together once the test creates `gate`."""
    return {
        "name": "sized-ui",
        "description": "a task bigger than every live worker waits, explained",
        "nodes": {
            "prepare": {"command": f"while [ ! -f {gate} ]; do sleep 0.05; done; echo ready"},
            "big": {"command": "echo big", "after": ["prepare"], "resources": {"cores": 4}},
            "small": {"command": "echo small", "after": ["prepare"]},
        },
    }


@pytest.fixture
async def small_ui(cluster: Cluster, browser: Any) -> AsyncIterator[UI]:
    """A broker and one worker offering 1 core, 4 GiB, no GPU."""
    _, url = cluster.start_broker()
    cluster.start_worker("--cores", "1", "--memory", "4G", "--gpus", "0", name="w1", slots=2)
    page = await open_page(browser, url, TOKENS[url])
    yield UI(cluster, url, page, TOKENS[url])
    await page.context.close()


async def test_a_parked_task_shows_why_it_waits(small_ui: UI, tmp_path: Path,
                                                shots: Shots) -> None:
    ui, page = small_ui, small_ui.page
    gate = tmp_path / "gate"
    run = await publish_and_run(ui.url, sized(gate))
    await ui.goto(f"/runs/{run}")
    await expect(page.get_by_test_id("node-prepare")).to_have_attribute(
        "data-state", "running", timeout=LIVE_S)
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    gate.touch()
    # the small task runs; the big one is parked, which the open page learns without a reload
    await expect(page.get_by_test_id("node-small")).to_have_attribute(
        "data-state", "succeeded", timeout=LIVE_S)
    big = page.get_by_test_id("node-big")
    await expect(page.get_by_test_id("waiting-big")).to_have_text("waiting: needs 4 cores",
                                                                  timeout=LIVE_S)
    await expect(big).to_have_attribute("data-state", "ready")
    await expect(big).to_have_attribute("title", f"waiting: {REASON}")  # the whole reason
    await expect(page.get_by_test_id("waiting-small")).to_have_count(0)
    assert await page.evaluate("window.__sameDocument === true")
    await big.click()
    await expect(page.get_by_test_id("task-panel").get_by_test_id("waiting-for")).to_contain_text(
        f"Waiting: {REASON}")
    await shots.take(page, "run-waiting")

    await ui.goto("/")
    await expect(page.get_by_test_id("offer-w1")).to_contain_text("1 core · 4 GiB · 0 GPUs",
                                                                  timeout=LIVE_S)
    await expect(page.get_by_test_id("offer-w1")).to_contain_text("free", timeout=LIVE_S)
    await expect(page.get_by_test_id("parked-cpu")).to_have_text("1", timeout=LIVE_S)
    await expect(page.get_by_test_id("unfit-cpu")).to_have_text(f"⚠ 1 task waits: {REASON}")
    await shots.take(page, "dashboard-parked")

    # a worker big enough arrives: the task runs there, the warning and the badge go
    ui.cluster.start_worker("--cores", "4", name="w4", slots=1)
    await expect(page.get_by_test_id("offer-w4")).to_contain_text("4 cores", timeout=LIVE_S)
    await expect(page.get_by_test_id("unfit-cpu")).to_have_count(0, timeout=LIVE_S)
    st = await wait_run(ui.url, run, cluster=ui.cluster)
    assert st["run"]["state"] == "succeeded", st
    await page.get_by_test_id(f"run-{run}").get_by_role("link").click()
    await expect(big).to_have_attribute("data-state", "succeeded", timeout=LIVE_S)
    await expect(page.get_by_test_id("waiting-big")).to_have_count(0)
    assert not ui.errors, ui.errors
