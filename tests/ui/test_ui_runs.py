"""The UI against a real broker and worker: log in, watch a run change live, open a task's
details and log, resync after a broker restart, keep other users' runs out of sight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.cluster import api, publish_and_run, wait_run
from playwright.async_api import expect

from ui.conftest import UI, Shots, open_page

LIVE_S = 45_000  # ms: deadline for a state to show up in the page (2 busy cores)


def gated(gate: Path) -> dict[str, Any]:
    """`prepare` runs until the test creates `gate`; then the rest follows."""
    return {
        "name": "live-ui",
        "description": "prepare, three simulations, a report",
        "nodes": {
            "prepare": {"command": f"echo preparing; while [ ! -f {gate} ]; do sleep 0.05; done;"
                                   " echo '{\"cells\": 4096}' > \"$DAGB_RESULT\"; echo prepared"},
            "simulate": {"command": "echo simulating {{ x }}", "after": ["prepare"],
                         "matrix": {"x": [1, 2, 3]}},
            "report": {"command": "echo report done", "after": ["simulate"]},
        },
    }


async def test_login_with_a_token(ui: UI, browser: Any, shots: Shots) -> None:
    page = await open_page(browser, ui.url, None)
    await page.goto(ui.url + "/")
    await expect(page).to_have_url(f"{ui.url}/login?next=%2F")
    await page.fill("input[name=token]", ui.token)
    await shots.take(page, "login")
    await page.fill("input[name=token]", "dgb_wrong_token")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("invalid token")
    await page.fill("input[name=token]", ui.token)
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    await expect(page.get_by_test_id("runners")).to_contain_text("w1", timeout=LIVE_S)
    assert await page.evaluate("sessionStorage.getItem('dagb.token')") == ui.token
    await page.context.close()


async def test_a_run_changes_live_and_shows_task_details(ui: UI, tmp_path: Path,
                                                          shots: Shots) -> None:
    gate = tmp_path / "gate"
    run = await publish_and_run(ui.url, gated(gate))
    page = ui.page
    await ui.goto("/")
    await expect(page.get_by_test_id(f"run-{run}")).to_be_visible(timeout=LIVE_S)
    await expect(page.get_by_test_id("queues")).to_contain_text("cpu")
    await expect(page.get_by_test_id("runners")).to_contain_text("w1")
    await shots.take(page, "dashboard")
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    await page.click(f"text={run}")
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    prepare = page.get_by_test_id("node-prepare")
    await expect(prepare).to_have_attribute("data-state", "running", timeout=LIVE_S)
    await expect(page.get_by_test_id("group-simulate")).to_have_attribute("data-state", "pending")
    await shots.take(page, "run-running")
    gate.touch()
    await expect(page.get_by_test_id("node-report")).to_have_attribute(
        "data-state", "succeeded", timeout=LIVE_S)
    await expect(prepare).to_have_attribute("data-state", "succeeded")
    await expect(page.get_by_test_id("group-simulate")).to_have_attribute("data-state",
                                                                          "succeeded")
    await expect(page.get_by_test_id("run-phase")).to_have_text("finished", timeout=LIVE_S)
    assert await page.evaluate("window.__sameDocument === true")  # live, not reloaded
    await prepare.click()
    panel = page.get_by_test_id("task-panel")
    await expect(panel).to_contain_text("prepare")
    await expect(page.get_by_test_id("exit-code")).to_have_text("0")
    await expect(page.get_by_test_id("task-result")).to_contain_text("4096")
    await expect(page.get_by_test_id("task-log")).to_contain_text("prepared", timeout=LIVE_S)
    await shots.take(page, "run-task-panel")
    await page.get_by_role("button", name="timeline").click()
    await expect(page.get_by_test_id("gantt")).to_contain_text("simulate")
    await shots.take(page, "run-timeline")
    assert not ui.errors, ui.errors


async def test_resync_after_a_broker_restart(ui: UI, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = await publish_and_run(ui.url, gated(gate))
    page = ui.page
    await ui.goto(f"/runs/{run}")
    prepare = page.get_by_test_id("node-prepare")
    await expect(prepare).to_have_attribute("data-state", "running", timeout=LIVE_S)
    broker = ui.cluster.procs[0]
    port = int(ui.url.rsplit(":", 1)[1])
    assert broker.term() == 0  # clean stop: the socket closes with GOING_AWAY
    await expect(page.get_by_test_id("live-status")).to_have_text("reconnecting",
                                                                  timeout=LIVE_S)
    gate.touch()  # the run goes on while no broker serves the UI
    ui.cluster.start_broker(port=port)
    await wait_run(ui.url, run, cluster=ui.cluster)
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    await expect(page.get_by_test_id("run-phase")).to_have_text("finished", timeout=LIVE_S)
    await expect(prepare).to_have_attribute("data-state", "succeeded")


async def test_another_users_runs_stay_invisible(ui: UI, browser: Any) -> None:
    admin_run = await publish_and_run(ui.url, {"name": "secret", "nodes": {"a": {
        "executor": "noop"}}})
    await wait_run(ui.url, admin_run)
    bob = (await api(ui.url, "POST", "/api/v1/users", {"id": "bob"}))["token"]
    await api(ui.url, "POST", "/api/v1/workflow/publish",
              {"name": "bobs", "nodes": {"b": {"executor": "noop"}}}, token=bob)
    mine = (await api(ui.url, "POST", "/api/v1/workflow/execute", {"name": "bobs"},
                      token=bob))["run"]
    page = await open_page(browser, ui.url, bob)
    await page.goto(ui.url + "/")
    await expect(page.get_by_test_id(f"run-{mine}")).to_be_visible(timeout=LIVE_S)
    await expect(page.get_by_test_id(f"run-{admin_run}")).to_have_count(0)
    await page.goto(f"{ui.url}/runs/{admin_run}")
    await expect(page.get_by_role("alert")).to_contain_text(f"no run '{admin_run}'")
    await page.goto(f"{ui.url}/workflows")
    await expect(page.get_by_test_id("workflows")).to_contain_text("bobs")
    await expect(page.get_by_test_id("workflows")).not_to_contain_text("secret")
    await page.context.close()


async def test_cancel_redo_and_drain_from_the_ui(ui: UI, tmp_path: Path) -> None:
    page = ui.page
    page.on("dialog", lambda d: d.accept())  # the confirm() of cancel and shutdown
    gate = tmp_path / "gate"
    run = await publish_and_run(ui.url, gated(gate))
    await ui.goto(f"/runs/{run}")
    await expect(page.get_by_test_id("node-prepare")).to_have_attribute(
        "data-state", "running", timeout=LIVE_S)
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.get_by_test_id("run-phase")).to_have_text("cancelled", timeout=LIVE_S)
    await expect(page.get_by_test_id("group-simulate")).to_have_attribute("data-state",
                                                                          "cancelled")
    # redo from the cancelled node: a new run in which it and its descendants run again
    gate.touch()
    await page.get_by_test_id("node-prepare").click()
    await page.get_by_role("button", name="Redo from here").click()
    await page.wait_for_url(lambda u: "/runs/" in u and run not in u, timeout=LIVE_S)
    await expect(page.get_by_test_id("run-phase")).to_have_text("finished", timeout=LIVE_S)
    await expect(page.get_by_test_id("node-report")).to_have_attribute("data-state", "succeeded")
    # drain the worker from the dashboard: it finishes, leaves, and the table follows live
    await ui.goto("/")
    runners = page.get_by_test_id("runners")
    await expect(runners).to_contain_text("w1", timeout=LIVE_S)
    await runners.get_by_role("button", name="drain").click()
    await expect(runners).to_contain_text("no live runner", timeout=LIVE_S)
    assert not ui.errors, ui.errors
