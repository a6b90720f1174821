"""The editor, the history and large runs in a real browser against a real broker + worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e.cluster import api, publish_and_run, wait_run
from playwright.async_api import expect

from ui.conftest import ROOT, UI, Shots

LIVE_S = 45_000  # ms: deadline for a state to show up in the page (2 busy cores)

PIPELINE = {
    "name": "pipeline",
    "params": {"n": 1},
    "nodes": {
        "mesh": {"command": "echo mesh {{ n }}", "resources": {"cores": 1}},
        "solve": {"command": "echo solve", "after": ["mesh"], "retries": 2},
    },
}


async def test_edit_save_conflict_and_validation(ui: UI, shots: Shots) -> None:
    await api(ui.url, "POST", "/api/v1/workflow/publish", PIPELINE)
    page = ui.page
    await ui.goto("/workflows/pipeline")
    await expect(page.get_by_test_id("node-solve")).to_be_visible(timeout=LIVE_S)
    # add a node, give it a command, make it depend on solve, save with a message
    await page.get_by_role("button", name="Add node").click()
    await expect(page.get_by_test_id("node-task")).to_be_visible()
    form = page.get_by_test_id("node-form")
    await form.locator("textarea[name=command]").fill("echo post-processing")
    await form.locator("textarea[name=command]").press("Tab")
    await form.locator("input[name=after-solve]").check()
    await expect(page.locator(".react-flow__edge")).to_have_count(2)
    await page.fill("input[name=message]", "add a post-processing task")
    await shots.take(page, "editor")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("saved revision", timeout=LIVE_S)
    latest = await api(ui.url, "GET", "/api/v1/workflow/get", name="pipeline")
    assert latest["workflow"]["nodes"]["task"] == {"command": "echo post-processing",
                                                   "after": ["solve"], "executor": "shell"}
    base = await page.get_by_test_id("base-revision").inner_text()
    assert latest["revision"].startswith(base)

    # someone else saves meanwhile: our next save is on a stale base
    other = {**latest["workflow"], "nodes": {**latest["workflow"]["nodes"],
                                             "plot": {"command": "echo plot", "after": ["task"]}}}
    await api(ui.url, "POST", "/api/v1/workflow/publish",
              {"workflow": other, "message": "add plot", "base": latest["revision"]})
    await page.get_by_test_id("node-mesh").click()
    await form.locator("textarea[name=command]").fill("echo mesh v2")
    await form.locator("textarea[name=command]").press("Tab")
    await page.get_by_role("button", name="Save").click()
    conflict = page.get_by_test_id("conflict")
    await expect(conflict).to_contain_text("changed since you opened it", timeout=LIVE_S)
    await expect(conflict).to_contain_text("added plot")
    await shots.take(page, "editor-conflict")
    await conflict.get_by_role("button", name="Reload latest (drop my edits)").click()
    await expect(page.get_by_test_id("node-plot")).to_be_visible(timeout=LIVE_S)
    await expect(conflict).to_have_count(0)

    # an invalid value: the API's validation error lands on the node
    await page.get_by_test_id("node-solve").click()
    await form.locator("input[name=retries]").fill("1000")
    await form.locator("input[name=retries]").press("Tab")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("node-errors")).to_contain_text("solve", timeout=LIVE_S)
    await expect(page.locator(".box.has-error")).to_contain_text("retries")
    await expect(form.get_by_test_id("field-error-retries")).to_be_visible()
    await shots.take(page, "editor-validation")

    # the saved revision is in the history, with its message
    await ui.goto("/workflows/pipeline/history")
    await expect(page.get_by_test_id("revisions")).to_contain_text("add a post-processing task",
                                                                   timeout=LIVE_S)
    assert not ui.errors, ui.errors


async def test_history_diff_and_run_an_old_revision(ui: UI, shots: Shots) -> None:
    v1 = (await api(ui.url, "POST", "/api/v1/workflow/publish",
                    {"workflow": PIPELINE, "message": "first"}))["revision"]
    v2 = {**PIPELINE, "nodes": {"mesh": {"command": "echo finer mesh {{ n }}"},
                                "report": {"command": "echo report", "after": ["mesh"]}}}
    await api(ui.url, "POST", "/api/v1/workflow/publish",
              {"workflow": v2, "message": "replace solve with report", "base": v1})
    page = ui.page
    await ui.goto("/workflows/pipeline/history")
    summary = page.get_by_test_id("diff-summary")
    await expect(summary).to_contain_text("added report", timeout=LIVE_S)
    await expect(summary).to_contain_text("removed solve")
    await expect(summary).to_contain_text("changed mesh")
    await expect(page.locator(".box.change-added")).to_contain_text("report")
    await expect(page.locator(".box.change-removed")).to_contain_text("solve")
    await shots.take(page, "history-diff")
    # run the first revision with an override
    await page.locator("tr", has_text=v1[:12]).locator("input[name=to]").check()
    params = page.locator("textarea[name=params]")
    await expect(params).to_have_value('{\n  "n": 1\n}', timeout=LIVE_S)
    await params.fill('{"n": 7}')
    await page.get_by_role("button", name="Run this revision").click()
    await page.wait_for_url(f"{ui.url}/runs/**", timeout=LIVE_S)
    run = page.url.rsplit("/", 1)[1]
    done = await wait_run(ui.url, run, cluster=ui.cluster)
    assert done["run"]["revision"] == v1 and done["run"]["params"] == {"n": 7}
    await expect(page.get_by_test_id("run-phase")).to_have_text("finished", timeout=LIVE_S)
    await page.get_by_test_id("node-mesh").click()
    await expect(page.get_by_test_id("task-log")).to_contain_text("mesh 7", timeout=LIVE_S)


async def test_a_2000_task_run_stays_usable(ui: UI, shots: Shots) -> None:
    wf = {"name": "sweep", "nodes": {
        "prep": {"executor": "noop"},
        "sim": {"executor": "noop", "after": ["prep"], "matrix": {"i": list(range(2000))}},
        "report": {"executor": "noop", "after": ["sim"]}}}
    run = await publish_and_run(ui.url, wf)
    page = ui.page
    t0 = time.monotonic()
    await ui.goto(f"/runs/{run}")
    group = page.get_by_test_id("group-sim")
    await expect(group).to_contain_text("× 2000", timeout=LIVE_S)
    await expect(page.get_by_test_id("graph")).to_have_attribute("data-nodes", "3")
    await expect(page.get_by_test_id("run-phase")).to_have_text("finished", timeout=60_000)
    await expect(group).to_contain_text("2000 succeeded")
    assert time.monotonic() - t0 < 60
    await shots.take(page, "large-run")
    # expand the group: 2,002 nodes laid out off the main thread, only the visible ones drawn
    await group.get_by_role("button", name="expand").click()
    await expect(page.get_by_test_id("graph")).to_have_attribute("data-nodes", "2002",
                                                                 timeout=LIVE_S)
    await expect(page.locator(".react-flow__node").first).to_be_attached(timeout=LIVE_S)
    drawn = await page.locator(".react-flow__node").count()
    assert 0 < drawn < 2002, drawn
    await page.get_by_role("button", name="sim ✕").click()  # collapse again
    await expect(page.get_by_test_id("graph")).to_have_attribute("data-nodes", "3")
    await page.get_by_role("button", name="timeline").click()
    await expect(page.get_by_test_id("gantt")).to_contain_text("sim")
    assert not ui.errors, ui.errors


async def test_open_a_nodeworks_chart_in_the_editor(ui: UI) -> None:
    chart = ROOT.parent / "shared" / "formats" / "nodeworks" / "distributed_nodeworks_node_ex.nc"
    if not chart.is_file():
        pytest.fail(f"the shared Nodeworks example charts are missing: {chart}")
    page = ui.page
    await ui.goto("/workflows")
    await page.set_input_files("input[name=chart]", str(chart))
    await page.fill("input[name=chart-name]", "nw-chart")
    await page.get_by_role("button", name="Open in the editor").click()
    await page.wait_for_url(f"{ui.url}/workflows/nw-chart", timeout=LIVE_S)
    await expect(page.get_by_test_id("node-subtract")).to_be_visible(timeout=LIVE_S)
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Nodeworks chart").click()
    saved = await (await download.value).path()
    assert json.loads(Path(saved).read_text())  # the chart, as Nodeworks opens it
