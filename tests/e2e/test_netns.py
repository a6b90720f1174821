"""A worker on "another host": in its own network namespace, reaching Redis only over a veth link.

The test's redis-server listens on 127.0.0.1 (for the broker and the test) and on the host end
of the link; the broker's HTTP API listens on the host end only. The worker runs inside the
namespace (`ip netns exec`) with the TCP URL of the host end: the namespace's 127.0.0.1 has
nothing, and the server has no unix socket, so the link is its only way in. Tasks record the
network namespace they ran in; the second test cuts the link mid-run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from conftest import RedisServer
from helpers import wait_until
from peers.netns import NetNs, net_inode, netns  # noqa: F401

from e2e.cluster import Cluster, Proc, api, publish_and_run, wait_run

WORKER = "remote"

# Run inside the namespace: "ok" or the error's class name for TCP HOST PORT, then for HTTP URL.
PROBE = """
import socket, sys, urllib.request
def tcp(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"PING\\r\\n")
            return "ok" if s.recv(7) == b"+PONG\\r\\n" else "bad answer"
    except OSError as e:
        return type(e).__name__
def http(url):
    try:
        return "ok" if urllib.request.urlopen(url, timeout=5).status == 200 else "bad status"
    except OSError as e:
        return type(e).__name__
args = sys.argv[1:]
out = [tcp(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
if len(args) % 2:
    out.append(http(args[-1]))
print(" ".join(out))
"""


@dataclass
class Remote:
    """A broker and Redis on the host, and the namespace a worker runs in."""

    cluster: Cluster
    ns: NetNs
    redis: RedisServer

    @property
    def worker_redis_url(self) -> str:
        return f"redis://{self.ns.host_ip}:{self.redis.port}/0"

    def probe(self, *targets: str) -> list[str]:
        """PROBE run inside the namespace (targets: HOST PORT pairs, then an optional URL)."""
        r = self.ns.run(sys.executable, "-c", PROBE, *targets)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    async def wait(self, predicate: Callable[[], Awaitable[object]], what: str) -> None:
        """wait_until, with the broker's and the worker's logs on a timeout."""
        try:
            await wait_until(predicate, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.cluster.logs()}") from None

    def start_broker(self) -> str:
        _, url = self.cluster.start_broker(host=self.ns.host_ip)  # API on the link's host end
        return url

    def start_worker(self, *extra: str, **kw: Any) -> Proc:
        return self.cluster.start_worker(
            *extra, name=WORKER, wrap=self.ns.exec_argv(), redis_url=self.worker_redis_url, **kw
        )


@pytest.fixture
def remote(netns: NetNs, tmp_path: Path, prefix: str, child_env: dict[str, str]  # noqa: F811
           ) -> Iterator[Remote]:
    server = RedisServer(tmp_path / "redis", bind=("127.0.0.1", netns.host_ip)).start()
    # nothing in the environment may point a process at another Redis (or a unix socket)
    env = {k: v for k, v in child_env.items() if not k.startswith(("DAGBROKER_", "DAGB_"))}
    cluster = Cluster(server.url, prefix, tmp_path, env)
    try:
        yield Remote(cluster, netns, server)
    finally:
        cluster.stop_all()  # before the namespace goes: no worker is left inside it
        server.stop()


def by_id(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in st["tasks"]}


def record(where: Path) -> str:
    """A shell command appending `NODE ATTEMPT net:[INODE] ADDRESSES` to `where`."""
    return (f'echo "$DAGB_NODE $DAGB_ATTEMPT $(readlink /proc/self/ns/net) '
            f'$(ip -o -4 addr show scope global | awk \'{{print $4}}\' | paste -sd,)" >> {where}')


async def redis_clients(r: Remote) -> list[dict[str, Any]]:
    client = aredis.Redis.from_url(r.redis.url, decode_responses=True)
    try:
        return list(await client.client_list())
    finally:
        await client.aclose()


async def test_worker_in_namespace_runs_every_task_there(remote: Remote) -> None:
    """The namespace reaches Redis and the API only at the host end of the link; a run's tasks
    all execute in the namespace, on the worker whose Redis connections come over the link."""
    r, ns = remote, remote.ns
    port = str(r.redis.port)
    assert r.probe("127.0.0.1", port, ns.host_ip, port) == ["ConnectionRefusedError", "ok"]
    url = r.start_broker()
    assert url.startswith(f"http://{ns.host_ip}:")
    assert r.probe(f"{url}/api/v1/health/live") == ["ok"]

    worker = r.start_worker(slots=2)
    where = r.cluster.tmp / "where"
    wf = {"name": "elsewhere", "nodes": {
        "a": {"command": record(where)},
        "b": {"command": record(where), "after": ["a"]},
        "c": {"command": record(where), "after": ["a"]},
        "d": {"command": record(where), "after": ["b", "c"]},
    }}
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, cluster=r.cluster)
    assert st["run"]["state"] == "succeeded", st
    tasks = by_id(st)
    assert {n: (t["runner"], t["attempt"]) for n, t in tasks.items()} == {
        n: (WORKER, 1) for n in "abcd"}

    assert worker.alive()
    ns_id = f"net:[{ns.inode()}]"
    assert net_inode(worker.pid) == ns.inode() != net_inode()
    identify = subprocess.run(["ip", "netns", "identify", str(worker.pid)],
                              capture_output=True, text=True, check=True).stdout.split()
    assert identify == [ns.name]
    lines = sorted(line.split() for line in where.read_text().splitlines())
    assert lines == [[n, "1", ns_id, f"{ns.ns_ip}/30"] for n in "abcd"]

    peers = {c["addr"].rsplit(":", 1)[0] for c in await redis_clients(r)}
    assert ns.ns_ip in peers  # the worker's connections come in over the link

    async def worker_gone_from_redis() -> bool:
        return ns.ns_ip not in {c["addr"].rsplit(":", 1)[0] for c in await redis_clients(r)}

    worker.term()
    await wait_until(worker_gone_from_redis, what="the worker's connections to close")


def marked(marks: Path, long_loops: int) -> str:
    """A task that appends `start NODE ATTEMPT PID`, then `overlap NODE ATTEMPT OTHERPID` for
    each earlier attempt of its node whose shell is still alive, works (attempt 1:
    `long_loops` × 0.1 s, later attempts 0.3 s), then appends `end NODE ATTEMPT PID`."""
    return (
        f'echo "start $DAGB_NODE $DAGB_ATTEMPT $$" >> {marks}; '
        f'for p in $(awk -v n="$DAGB_NODE" -v a="$DAGB_ATTEMPT" '
        f"'$1 == \"start\" && $2 == n && $3 != a {{print $4}}' {marks}); do "
        f'if kill -0 "$p" 2>/dev/null; then '
        f'echo "overlap $DAGB_NODE $DAGB_ATTEMPT $p" >> {marks}; fi; done; '
        f'n=3; if [ "$DAGB_ATTEMPT" = 1 ]; then n={long_loops}; fi; '
        f'i=0; while [ $i -lt $n ]; do sleep 0.1; i=$((i+1)); done; '
        f'echo "end $DAGB_NODE $DAGB_ATTEMPT $$" >> {marks}'
    )


def overlaps(lines: list[list[str]]) -> list[str]:
    """Attempts of one node that ran at the same time, from the marks file (in append order):
    an earlier attempt still alive when a later one started (its `overlap` line), or one that
    ended after a later one had started. (An attempt killed by its worker has no `end`.)"""
    found = [" ".join(m) for m in lines if m[0] == "overlap"]
    started: dict[str, list[str]] = {}
    for kind, node, attempt, *_ in lines:
        if kind == "start":
            started.setdefault(node, []).append(attempt)
        elif kind == "end" and started[node][-1] != attempt:
            found.append(f"{node}: attempt {attempt} ended after attempt {started[node][-1]} "
                         "had started")
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_run_survives_a_cut_link(remote: Remote, keys: Any) -> None:
    """Cut the link while attempt 1 of two tasks runs, until the broker has declared the worker
    lost; bring it back: the run completes on the same worker, and no attempt of a task ran
    while another attempt of it was still alive."""
    r, ns = remote, remote.ns
    url = r.start_broker()
    # free slots and cores: room for a 2nd attempt next to a 1st one that was not stopped
    worker = r.start_worker("--cores", "8", slots=4, heartbeat_ttl=2.0)
    marks = r.cluster.tmp / "marks"
    wf = {"name": "cut", "nodes": {
        "a": {"command": marked(marks, 150)},
        "b": {"command": marked(marks, 150)},
        "c": {"command": marked(marks, 3), "after": ["a", "b"]},
    }}
    run = await publish_and_run(url, wf)

    def lines() -> list[list[str]]:
        return [m.split() for m in marks.read_text().splitlines()] if marks.exists() else []

    async def both_started() -> bool:
        return {(m[1], m[2]) for m in lines() if m[0] == "start"} >= {("a", "1"), ("b", "1")}

    await r.wait(both_started, "attempt 1 of a and b running in the namespace")
    rds = aredis.Redis.from_url(r.redis.url, decode_responses=True)
    try:
        ns.link_down()
        try:
            async def declared_lost() -> bool:
                if await rds.exists(keys.heartbeat(WORKER)):
                    return False
                st = await api(url, "GET", "/api/v1/workflow/status", run=run)
                return all((by_id(st)[n]["lost"] or 0) >= 1 for n in "ab")

            await r.wait(declared_lost, "the broker to reclaim a and b from the worker")
        finally:
            ns.link_up()
    finally:
        await rds.aclose()

    st = await wait_run(url, run, timeout_s=120, cluster=r.cluster)
    assert st["run"]["state"] == "succeeded", (st, r.cluster.logs())
    tasks = by_id(st)
    assert all(t["runner"] == WORKER for t in tasks.values()), tasks
    assert tasks["a"]["attempt"] >= 2 and tasks["b"]["attempt"] >= 2, tasks
    assert worker.alive()

    pids = [int(m[3]) for m in lines() if m[0] == "start"]

    async def attempts_gone() -> bool:
        return not any(pid_alive(p) for p in pids)

    await r.wait(attempts_gone, "every attempt's shell to exit")
    assert overlaps(lines()) == [], "\n".join(" ".join(m) for m in lines())
