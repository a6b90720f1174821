"""Redo from a node on real processes: exactly that node and its descendants run again,
everything else is reused with its old result; the runs are linked both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import Cluster, api, publish_and_run, wait_run
from e2e.test_cli import dagbroker

LOG = 'echo "$DAGB_RUN" >> {{ out }}/"$DAGB_NODE"'
WAIT = "while [ ! -f {{ out }}/go ]; do sleep 0.02; done"  # the test creates `go`
RESULT = "echo '{\"run\": \"'$DAGB_RUN'\"}' > \"$DAGB_RESULT\""


def chain(out: Path) -> dict[str, Any]:
    """a → b → c[0..1] → e, a → d → e; `a` waits for the file `go`."""
    return {
        "name": "chain",
        "params": {"out": str(out)},
        "nodes": {
            "a": {"command": f"{WAIT}; {LOG}; {RESULT}"},
            "b": {"after": ["a"],
                  "command": f'{LOG}; cp "$DAGB_INPUTS" {{{{ out }}}}/b."$DAGB_RUN"; {RESULT}'},
            "c": {"after": ["b"], "matrix": {"k": [1, 2]}, "command": f"{LOG}; {RESULT}"},
            "d": {"after": ["a"], "command": f"{LOG}; {RESULT}"},
            "e": {"after": ["c", "d"],
                  "command": f'{LOG}; cp "$DAGB_INPUTS" {{{{ out }}}}/e."$DAGB_RUN"'},
        },
    }


def ran(out: Path, task: str) -> list[str]:
    """The runs in which `task` ran, in order."""
    path = out / task
    return path.read_text().split() if path.exists() else []


async def test_redo_reruns_the_node_and_its_descendants(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    out = tmp_path / "out"
    out.mkdir()
    old = await publish_and_run(url, chain(out))
    with pytest.raises(AssertionError, match="409"):  # still running: `a` waits for `go`
        await api(url, "POST", f"/api/v1/runs/{old}/redo", {"node": "b"})
    (out / "go").touch()
    assert (await wait_run(url, old, cluster=cluster))["run"]["state"] == "succeeded"
    with pytest.raises(AssertionError, match="404") as e:
        await api(url, "POST", f"/api/v1/runs/{old}/redo", {"node": "zz"})
    assert "'zz'" in str(e.value)

    redo = dagbroker("redo", old, "b", "--watch", url=url, env=cluster.env)
    assert redo.returncode == 0, redo.stdout + redo.stderr
    new = redo.stdout.strip().splitlines()[0]
    assert "4 task(s) run again, 2 reused" in redo.stderr

    for task in ("a", "d"):
        assert ran(out, task) == [old], task
    for task in ("b", "c[0]", "c[1]", "e"):
        assert ran(out, task) == [old, new], task
    # reused results were handed to the tasks that ran again
    assert json.loads((out / f"b.{new}").read_text()) == {"a": {"run": old}}
    assert json.loads((out / f"e.{new}").read_text()) == {
        "c[0]": {"run": new}, "c[1]": {"run": new}, "d": {"run": old}
    }
    st = await api(url, "GET", "/api/v1/workflow/status", run=new)
    assert st["run"]["state"] == "succeeded" and st["run"]["redo_of"] == old
    assert st["run"]["counts"] == {"succeeded": 6} and st["run"]["total"] == 6
    tasks = {t["id"]: t for t in st["tasks"]}
    assert {tid for tid, t in tasks.items() if t.get("reused_from") == old} == {"a", "d"}
    assert tasks["a"]["result"] == {"run": old} and tasks["b"]["result"] == {"run": new}
    assert (await api(url, "GET", f"/api/v1/runs/{old}"))["run"]["redone_by"] == [new]


async def test_redo_of_a_failed_run_and_of_one_matrix_copy(
    cluster: Cluster, tmp_path: Path
) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "go").touch()
    wf = chain(out)
    wf["nodes"]["d"]["command"] = f"{LOG}; test -f {{{{ out }}}}/d.ok"  # fails the first time
    old = await publish_and_run(url, wf)
    st = await wait_run(url, old, cluster=cluster)
    assert st["run"]["state"] == "failed"
    (out / "d.ok").touch()
    # from one matrix copy: c[1] and e run again, and so does d, which had failed
    first = await api(url, "POST", "/api/v1/workflow/redo", {"run": old, "node": "c[1]"})
    assert (first["rerun"], first["reused"]) == (3, 3)
    st = await wait_run(url, first["run"], cluster=cluster)
    assert st["run"]["state"] == "succeeded"
    assert ran(out, "c[0]") == [old] and ran(out, "c[1]") == [old, first["run"]]
    assert ran(out, "d") == [old, first["run"]] and ran(out, "e") == [first["run"]]
    again = await api(url, "POST", f"/api/v1/runs/{old}/redo", {"node": "e"})
    assert (again["rerun"], again["reused"]) == (2, 4)  # e, and d: it failed in that run
    await wait_run(url, again["run"], cluster=cluster)
    assert (await api(url, "GET", f"/api/v1/runs/{old}"))["run"]["redone_by"] == [
        first["run"], again["run"]
    ]
