"""The two entry points and the client verbs, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import free_port

from e2e.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def dagbroker(*args: str, url: str, env: dict[str, str], timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    from e2e.cluster import TOKENS

    env = {**env, "DAGBROKER_TOKEN": TOKENS.get(url, "")}
    return subprocess.run(
        [sys.executable, "-m", "broker.cli.main", *args, "--url", url],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=str(ROOT),
    )


def test_scripts_run_runs_the_example(tmp_path: Path, child_env: dict[str, str]) -> None:
    """`scripts/run` (the README's first command) brings everything up and runs the diamond."""
    env = {**child_env, "DAGBROKER_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "run"), "--port", str(free_port()),
         "--exit-after-example"],
        capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "published diamond" in out.stdout
    assert "succeeded" in out.stdout
    assert "redis-cli -s" in out.stdout  # the exact command to inspect the embedded Redis
    assert "UI:" in out.stdout
    # It stopped everything it started: no redis-server left in that data dir.
    pid_file = tmp_path / "home" / "redis" / "redis.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        assert not pid or not Path(f"/proc/{pid}").exists()


def test_cli_run_watch_exit_codes(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    env = cluster.env
    ok = dagbroker("run", str(ROOT / "examples" / "diamond.json"), "--watch", url=url, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    run_id = ok.stdout.strip().splitlines()[0]
    assert run_id.startswith("r"), ok.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "nodes": {"x": {"command": "exit 4"}}}))
    failed = dagbroker("run", str(bad), "--watch", url=url, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    status = dagbroker("status", run_id, url=url, env=env)
    assert status.returncode == 0, status.stderr
    assert "succeeded" in status.stdout and "combine" in status.stdout
    missing = dagbroker("status", "rnothere00", url=url, env=env)
    assert missing.returncode == 2 and "no run" in missing.stderr
    invalid = tmp_path / "cycle.json"
    invalid.write_text(json.dumps({"name": "cyc", "nodes": {
        "a": {"command": "true", "after": ["b"]}, "b": {"command": "true", "after": ["a"]}}}))
    rejected = dagbroker("publish", str(invalid), url=url, env=env)
    assert rejected.returncode == 2
    assert "cycle" in rejected.stderr
    unreachable = dagbroker("status", "rx0000", url=f"http://127.0.0.1:{free_port()}", env=env)
    assert unreachable.returncode == 3


async def test_admin_shutdown_stops_the_broker_gracefully(cluster: Cluster) -> None:
    from e2e.cluster import api

    broker, url = cluster.start_broker()
    out = await api(url, "POST", "/api/v1/admin/shutdown")
    assert out == {"shutdown": True}
    assert broker.popen.wait(30) == 0


def test_cli_login_users_tokens(cluster: Cluster, tmp_path: Path) -> None:
    _, url = cluster.start_broker()
    home = tmp_path / "clihome"
    env = {**cluster.env, "DAGBROKER_HOME": str(home)}
    made = dagbroker("users", "create", "dana", "--json", url=url, env=env)
    assert made.returncode == 0, made.stderr
    dana_token = json.loads(made.stdout)["token"]
    # log in as dana: the token is checked, then saved (0600) for later commands
    env_no_token = {k: v for k, v in env.items() if k != "DAGBROKER_TOKEN"}
    login = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "login", "--url", url, "--token", dana_token],
        capture_output=True, text=True, env=env_no_token, timeout=60)
    assert login.returncode == 0 and "as dana" in login.stdout, login.stderr
    saved = home / "broker.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text()) == {"url": url, "token": dana_token}
    # later commands use the saved login (no --url, no --token)
    tokens = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "tokens", "create", "ci", "--scope", "runner",
         "--json"], capture_output=True, text=True, env=env_no_token, timeout=60)
    assert tokens.returncode == 0, tokens.stderr
    created = json.loads(tokens.stdout)
    assert created["user"] == "dana" and created["scopes"] == ["runner"]
    revoke = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "tokens", "revoke", created["id"]],
        capture_output=True, text=True, env=env_no_token, timeout=60)
    assert revoke.returncode == 0, revoke.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "login", "--url", url, "--token",
         "dgb_000000000000_" + "x" * 43], capture_output=True, text=True, env=env_no_token,
        timeout=60)
    assert bad.returncode == 2 and "invalid token" in bad.stderr
