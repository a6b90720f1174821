"""Ensembles end to end on real processes: one sub-workflow copy per member, a join after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import Cluster, api, publish_and_run, wait_run


def sweep(out: Path) -> dict[str, Any]:
    return {
        "name": "sweep",
        "params": {"out": str(out)},
        "nodes": {
            "prep": {"command": "mkdir -p {{ out }}"},
            "ens": {
                "kind": "ensemble",
                "after": ["prep"],
                "parameters": {"re": [100, 200, 400], "t": ["a", "b", "c", "d"]},
                "workflow": {
                    "params": {"mesh": "coarse"},
                    "nodes": {
                        "sim": {"command": "echo {{ re }} {{ t }} {{ mesh }} "
                                           '> {{ out }}/"$DAGB_NODE"'},
                        "post": {"after": ["sim"],
                                 "command": "echo '{\"re\": {{ re }}}' > \"$DAGB_RESULT\""},
                    },
                },
            },
            "join": {"after": ["ens"], "command": 'cp "$DAGB_INPUTS" {{ out }}/join.json'},
        },
    }


async def test_ensemble_of_twelve_members_then_join(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=4)
    out = tmp_path / "out"
    run = await publish_and_run(url, sweep(out))
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", st["run"]
    assert st["run"]["groups"] == {
        "ens": {"members": 12, "tasks": 24, "counts": {"succeeded": 24}}
    }
    tasks = {t["id"]: t for t in st["tasks"]}
    assert len(tasks) == 26
    combos = [(re, t) for re in (100, 200, 400) for t in "abcd"]
    for i, (re, t) in enumerate(combos):
        sim = tasks[f"ens[{i}].sim"]
        assert (sim["group"], sim["member"], sim["node"]) == ("ens", i, "ens.sim")
        assert sim["vars"] == {"mesh": "coarse", "re": re, "t": t}
        assert (out / f"ens[{i}].sim").read_text().split() == [str(re), t, "coarse"]
        assert tasks[f"ens[{i}].post"]["parents"] == [f"ens[{i}].sim"]
    # the join waited for every member's sink, and got each one's result
    join = tasks["join"]
    sinks = [tasks[f"ens[{i}].post"] for i in range(12)]
    assert join["parents"] == [s["id"] for s in sinks]
    assert join["started_at"] >= max(s["finished_at"] for s in sinks)
    inputs = json.loads((out / "join.json").read_text())
    assert inputs == {f"ens[{i}].post": {"re": re} for i, (re, _) in enumerate(combos)}


async def test_publish_rejects_a_bad_sub_workflow(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    wf = sweep(tmp_path)
    wf["nodes"]["ens"]["workflow"]["nodes"]["sim"]["command"] = "echo {{ nope }}"
    with pytest.raises(AssertionError, match="422") as e:
        await api(url, "POST", "/api/v1/workflow/publish", wf)
    assert "workflow.nodes.sim.command" in str(e.value) and "'ens'" in str(e.value)
