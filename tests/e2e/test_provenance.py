"""End to end: a real broker and worker; which run produced this file, asked from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from e2e.cluster import TOKENS, Cluster, api, wait_run

ROOT = Path(__file__).resolve().parents[2]

WF = {
    "name": "report",
    "params": {"title": "first"},
    "nodes": {
        "write": {"command": "printf 'report: %s\\n' {{title}} > report.txt",
                  "outputs": ["report.txt"]},
        "after": {"after": ["write"], "executor": "noop"},
    },
}


def dagbroker(*args: str, url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "DAGBROKER_TOKEN": TOKENS.get(url, "")}
    return subprocess.run(
        [sys.executable, "-m", "broker.cli.main", *args, "--url", url],
        capture_output=True, text=True, env=env, timeout=120, cwd=str(ROOT),
    )


async def wait_provenance(url: str, run: str) -> None:
    """The broker writes a run's manifest (and indexes its files) just after the run ends."""

    async def recorded() -> bool:
        try:
            return bool(await api(url, "GET", f"/api/v1/runs/{run}/provenance"))
        except AssertionError:
            return False

    await wait_until(recorded, 30, what=f"the provenance of {run}")


async def test_provenance_of_an_output_file_from_the_cli(cluster: Cluster, tmp_path: Path
                                                         ) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    pub = await api(url, "POST", "/api/v1/workflow/publish", WF)
    ex = await api(url, "POST", "/api/v1/workflow/execute", {"name": "report"})
    st = await wait_run(url, ex["run"], cluster=cluster)
    assert st["run"]["state"] == "succeeded", st
    await wait_provenance(url, ex["run"])

    # the user has a copy of the file: the CLI hashes it locally and asks the broker
    copy = tmp_path / "copy-of-report.txt"
    copy.write_text("report: first\n")
    out = dagbroker("provenance", str(copy), "--json", url=url, env=cluster.env)
    assert out.returncode == 0, out.stdout + out.stderr + cluster.logs()
    found = json.loads(out.stdout)["produced_by"]
    assert found[0] | {"finished_at": 0} == {
        "run": ex["run"], "task": "write", "kind": "output", "name": "report.txt",
        "workflow": "report", "owner": "admin", "revision": pub["revision"], "finished_at": 0}
    text = dagbroker("provenance", str(copy), url=url, env=cluster.env).stdout
    assert f"task write in run {ex['run']}" in text

    # rerun from the recorded revision, even after the workflow changed and was deleted
    changed = {**WF, "params": {"title": "second"}}
    second = await api(url, "POST", "/api/v1/workflow/publish", changed)
    gone = dagbroker("delete", "report", url=url, env=cluster.env)
    assert gone.returncode == 0, gone.stderr
    again = dagbroker("rerun", ex["run"], "--watch", url=url, env=cluster.env)
    assert again.returncode == 0, again.stdout + again.stderr
    new_run = again.stdout.strip().splitlines()[0]
    await wait_provenance(url, new_run)
    manifest = json.loads(dagbroker("provenance", new_run, url=url, env=cluster.env).stdout)
    assert manifest["revision"] == pub["revision"] and manifest["params"] == {"title": "first"}
    out = dagbroker("provenance", str(copy), "--json", url=url, env=cluster.env)
    assert [e["run"] for e in json.loads(out.stdout)["produced_by"]] == [new_run, ex["run"]]

    hist = dagbroker("history", "report", url=url, env=cluster.env)
    assert hist.returncode == 0 and len(hist.stdout.strip().splitlines()) == 3, hist.stdout
    assert "deleted" in hist.stdout.splitlines()[0]
    diff = dagbroker("diff", "report", pub["revision"][:7], second["revision"], url=url,
                     env=cluster.env)
    assert '~ params: {"title": "first"} → {"title": "second"}' in diff.stdout, diff.stdout
