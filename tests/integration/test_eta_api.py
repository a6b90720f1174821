"""GET /api/v1/runs/{id}/eta: durations from history, slots from live runners."""

from __future__ import annotations

from typing import Any

from helpers import wait_until
from test_lifecycle_ops import complete_next, fake_runner

from broker.wire import Outcome

WF = {"name": "est", "nodes": {
    "a": {"command": "true"},
    "b": {"command": "true", "after": ["a"]},
    "c": {"command": "echo never-seen", "after": ["b"], "resources": {"walltime": "00:01:00"}},
}}


async def test_eta_from_history_and_hints(make_client: Any, rds: Any, keys: Any) -> None:
    client = await make_client(runner_scan_s=0.05)
    await client.post("/api/v1/workflow/publish", json=WF)
    first = (await (await client.post("/api/v1/workflow/execute", json={"name": "est"})).json())[
        "run"]
    # no runner: nothing can be estimated
    eta = await (await client.get(f"/api/v1/runs/{first}/eta")).json()
    assert eta["eta"] is None and eta["unserved_classes"] == ["cpu"]
    await fake_runner(rds, keys)
    for _ in range(3):
        await complete_next(rds, keys, Outcome.SUCCEEDED)

    async def archived() -> bool:
        return bool(await rds.hget(keys.run(first), "archived"))

    await wait_until(archived, what="first run archived")
    second = (await (await client.post("/api/v1/workflow/execute", json={"name": "est"})).json())[
        "run"]
    eta = await (await client.get(f"/api/v1/runs/{second}/eta")).json()
    tasks = {t["id"]: t for t in eta["tasks"]}
    assert tasks["a"]["source"] == tasks["b"]["source"] == "history"
    assert tasks["c"]["source"] == "history"  # c ran in the first run too
    assert eta["eta"] is not None and eta["eta"] >= eta["now"]
    assert tasks["a"]["expected_finish"] <= tasks["b"]["expected_start"]
    assert tasks["b"]["expected_finish"] <= tasks["c"]["expected_start"]
    # another user cannot see it
    r = await client.post("/api/v1/users", json={"id": "mallory"})
    other = {"Authorization": f"Bearer {(await r.json())['token']}"}
    assert (await client.get(f"/api/v1/runs/{second}/eta", headers=other)).status == 404


async def test_walltime_hint_when_no_history(make_client: Any, rds: Any, keys: Any) -> None:
    client = await make_client(runner_scan_s=0.05)
    await client.post("/api/v1/workflow/publish", json=WF)
    await fake_runner(rds, keys)
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "est"})).json())[
        "run"]

    async def served() -> Any:
        eta = await (await client.get(f"/api/v1/runs/{run}/eta")).json()
        return eta if not eta["unserved_classes"] else None

    eta = await wait_until(served, what="capacity known")
    tasks = {t["id"]: t for t in eta["tasks"]}
    assert tasks["c"]["source"] == "walltime" and tasks["c"]["median_s"] == 60.0
    assert tasks["a"]["source"] == "unknown" and eta["unknown_durations"] == 2
    assert tasks["c"]["expected_finish"] - tasks["c"]["expected_start"] == 60_000
