"""The task panel follows a running task's log over the live socket, against a real broker,
worker and Chromium: the first REST page of the log, then new lines as `log` frames of the tab's
websocket — no `GET …/log` while they arrive — and one refetch when the task ends; after a
broker restart it follows again from the last line it received, and shows no line twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e.cluster import publish_and_run
from playwright.async_api import expect

from ui.conftest import UI

LIVE_S = 45_000  # ms: deadline for a state to show up in the page (2 busy cores)
QUIET_S = 3  # the task's pause before its second line: longer than the UI's 2 s log polling


def talker(gate: Path, end: Path) -> dict[str, Any]:
    """One shell task: a line, then a wait for `gate`, a pause (so a page that polled the log
    would have polled before the second line), a second line, a wait for `end`, a last line."""
    return {
        "name": "log-follow-ui",
        "nodes": {"talk": {"command": (
            f"echo first line; while [ ! -f {gate} ]; do sleep 0.05; done; sleep {QUIET_S};"
            " echo second line;"
            f" while [ ! -f {end} ]; do sleep 0.05; done; echo last line")}},
    }


class Wire:
    """What the page said and heard: its `…/log` requests, the messages its websockets sent,
    and the log lines that came in `log` frames."""

    def __init__(self, page: Any) -> None:
        self.log_requests: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.socket_lines: list[str] = []
        self.line_ids: dict[str, str] = {}  # line → id, as the socket sent it
        page.on("request", self._request)
        page.on("websocket", self._websocket)

    def _request(self, request: Any) -> None:
        if request.url.split("?")[0].endswith("/log"):
            self.log_requests.append(request.url)

    def _websocket(self, ws: Any) -> None:
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", self._received)

    def _received(self, payload: str | bytes) -> None:
        data = json.loads(payload)
        for msg in data if isinstance(data, list) else [data]:
            if msg.get("type") == "log":
                self.socket_lines += [x["line"] for x in msg["lines"]]
                self.line_ids.update((x["line"], x["id"]) for x in msg["lines"])

    def follows(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("op") == "follow_log"]


async def test_the_task_panel_follows_a_running_log_over_the_socket(ui: UI,
                                                                    tmp_path: Path) -> None:
    gate, end = tmp_path / "gate", tmp_path / "end"
    run = await publish_and_run(ui.url, talker(gate, end))
    page = ui.page
    wire = Wire(page)
    await ui.goto(f"/runs/{run}")
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    node = page.get_by_test_id("node-talk")
    await expect(node).to_have_attribute("data-state", "running", timeout=LIVE_S)
    await node.click()
    log = page.get_by_test_id("task-log")
    await expect(log).to_contain_text("first line", timeout=LIVE_S)  # the first REST page
    await expect(page.get_by_test_id("log-follow")).to_have_text("live")
    await expect(log).not_to_contain_text("second line")  # the task still waits for the gate
    assert {"op": "follow_log", "run": run, "task": "talk"} == {
        k: v for k, v in wire.follows()[-1].items() if k != "after"}
    loaded = len(wire.log_requests)
    assert loaded >= 1, "the panel's first page comes from REST"

    gate.touch()
    await expect(log).to_contain_text("second line", timeout=LIVE_S)
    await expect(node).to_have_attribute("data-state", "running")  # still running
    # the line came over the socket: a `log` frame carried it and no REST page was fetched
    assert "second line" in wire.socket_lines
    assert wire.log_requests[loaded:] == [], "the new line came from REST polling"
    assert (await log.inner_text()).splitlines() == ["first line", "second line"]

    end.touch()  # the task ends: the follow stops and the page is fetched once more
    await expect(node).to_have_attribute("data-state", "succeeded", timeout=LIVE_S)
    await expect(log).to_have_text("first line\nsecond line\nlast line", timeout=LIVE_S)
    await expect(page.get_by_test_id("log-follow")).to_have_count(0)
    assert len(wire.log_requests) > loaded  # the refetch after the end
    assert any(m.get("op") == "unfollow_log" for m in wire.sent)
    assert not ui.errors, ui.errors


def chatty(gates: list[Path]) -> dict[str, Any]:
    """One shell task: `one`, then a line after each gate (`two`, `three`, `four`), then a wait
    for the test's end."""
    waits = [f"while [ ! -f {g} ]; do sleep 0.05; done" for g in gates]
    return {"name": "log-refollow-ui", "nodes": {"talk": {"command": (
        f"echo one; {waits[0]}; echo two; {waits[1]}; echo three; {waits[2]}; echo four;"
        f" {waits[3]}")}}}


async def test_after_a_broker_restart_the_log_is_followed_again_without_repeats(
        ui: UI, tmp_path: Path) -> None:
    gates = [tmp_path / f"gate{i}" for i in range(4)]
    run = await publish_and_run(ui.url, chatty(gates))
    page = ui.page
    wire = Wire(page)
    await ui.goto(f"/runs/{run}")
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    node = page.get_by_test_id("node-talk")
    await expect(node).to_have_attribute("data-state", "running", timeout=LIVE_S)
    await node.click()
    log, mark = page.get_by_test_id("task-log"), page.get_by_test_id("log-follow")
    await expect(log).to_have_text("one", timeout=LIVE_S)
    await expect(mark).to_have_text("live")
    gates[0].touch()
    await expect(log).to_have_text("one\ntwo", timeout=LIVE_S)
    assert "two" in wire.socket_lines

    broker = ui.cluster.procs[0]
    port = int(ui.url.rsplit(":", 1)[1])
    assert broker.term() == 0
    await expect(page.get_by_test_id("live-status")).to_have_text("reconnecting",
                                                                  timeout=LIVE_S)
    await expect(mark).to_have_text("polling")  # the fallback while the socket is down
    gates[1].touch()  # `three` is shipped while no broker serves the page
    ui.cluster.start_broker(port=port)
    await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)
    await expect(mark).to_have_text("live")
    await expect(log).to_have_text("one\ntwo\nthree", timeout=LIVE_S)
    # followed again on the new socket, from the last line the old one delivered
    assert len(wire.follows()) == 2
    assert wire.follows()[1]["after"] == wire.line_ids["two"]
    gates[2].touch()
    await expect(log).to_have_text("one\ntwo\nthree\nfour", timeout=LIVE_S)
    assert "four" in wire.socket_lines
    await expect(node).to_have_attribute("data-state", "running")
    gates[3].touch()
    await expect(node).to_have_attribute("data-state", "succeeded", timeout=LIVE_S)
    await expect(log).to_have_text("one\ntwo\nthree\nfour", timeout=LIVE_S)
    assert not ui.errors, ui.errors
