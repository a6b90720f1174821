"""Live logs and artifacts through the API and the CLI, with a real broker and worker."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from e2e.cluster import TOKENS, Cluster, api, publish_and_run, wait_run

WF = {"name": "logs", "nodes": {
    "talk": {"command": "for i in 1 2 3; do echo line $i; done; "
                        "while [ ! -f {{gate}} ]; do sleep 0.02; done; echo done; "
                        "echo payload > out.txt", "outputs": ["out.txt"]},
}, "params": {"gate": "/nonexistent"}}


async def test_live_log_lines_then_artifact_download(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker("--artifacts", str(cluster.data_dir / "artifacts"), name="w1", slots=1)
    gate = tmp_path / "gate"
    wf = {**WF, "params": {"gate": str(gate)}}
    run = await publish_and_run(url, wf)

    async def first_lines() -> list[str] | None:
        out = await api(url, "GET", f"/api/v1/runs/{run}/logs/talk")
        lines = [x["line"] for x in out["lines"]]
        return lines if len(lines) >= 3 else None

    lines = await wait_until(first_lines, what="live log lines while the task runs")
    assert lines[:3] == ["line 1", "line 2", "line 3"]
    st = await api(url, "GET", f"/api/v1/runs/{run}")
    assert st["tasks"][0]["state"] == "running"  # streamed while it was still running
    gate.touch()
    await wait_run(url, run, cluster=cluster)
    out = await api(url, "GET", f"/api/v1/runs/{run}/logs/talk")
    assert [x["line"] for x in out["lines"]][-1] == "done"
    later = await api(url, "GET", f"/api/v1/runs/{run}/logs/talk", after=out["last_id"])
    assert later["lines"] == []
    arts = await api(url, "GET", f"/api/v1/runs/{run}/artifacts")
    [art] = arts["artifacts"]
    assert art["name"] == "out.txt" and art["sha256"] == hashlib.sha256(b"payload\n").hexdigest()
    env = {**cluster.env, "DAGBROKER_TOKEN": TOKENS[url]}
    cli = [sys.executable, "-m", "broker.cli.main"]
    got = subprocess.run([*cli, "artifacts", run, "--get", art["sha256"], "--url", url],
                         capture_output=True, env=env, timeout=60)
    assert got.returncode == 0 and got.stdout == b"payload\n", got.stderr
    logs = subprocess.run([*cli, "logs", run, "talk", "-f", "--url", url], capture_output=True,
                          text=True, env=env, timeout=60)
    assert logs.stdout.split("\n")[:4] == ["line 1", "line 2", "line 3", "done"]
    # another user sees none of it
    user = await api(url, "POST", "/api/v1/users", {"id": "snoop"})
    for path in (f"/api/v1/runs/{run}/logs/talk", f"/api/v1/runs/{run}/artifacts",
                 f"/api/v1/runs/{run}/artifacts/{art['sha256']}"):
        try:
            await api(url, "GET", path, token=user["token"])
            raise AssertionError(f"{path} answered another user")
        except AssertionError as e:
            assert "→ 404" in str(e), e
    # a hash that is not in the run's index is never served
    try:
        await api(url, "GET", f"/api/v1/runs/{run}/artifacts/{'0' * 64}")
        raise AssertionError("served an unindexed hash")
    except AssertionError as e:
        assert "→ 404" in str(e)
