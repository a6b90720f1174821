"""dagbroker benchmarks: W1-W4 and a bare redis-py floor. Writes docs/benchmarks.md.

Everything runs on this machine: an embedded redis-server (AOF everysec, as `dagbroker up`),
one `dagbroker serve` process and two `python -m worker` processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.embedded_redis import EmbeddedRedis  # noqa: E402

PREFIX = "bench"


TOKEN: dict[str, str] = {}  # the broker's admin token, read once it has started


def post(url: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {TOKEN.get('admin', '')}"},
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


class Stack:
    """Embedded Redis + one broker process + N worker processes."""

    def __init__(self, tmp: Path, workers: int, slots: int) -> None:
        self.tmp = tmp
        self.n_workers = workers
        self.slots = slots
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis = EmbeddedRedis(tmp / "data")
        self.url = ""

    async def start(self) -> None:
        await self.redis.start()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        port = 18000 + os.getpid() % 1000
        self.url = f"http://127.0.0.1:{port}"
        log = (self.tmp / "broker.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "broker.cli.main",
                    "serve",
                    "--redis-url",
                    self.redis.url,
                    "--prefix",
                    PREFIX,
                    "--port",
                    str(port),
                    "--data-dir",
                    str(self.tmp / "data"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        for i in range(self.n_workers):
            wlog = (self.tmp / f"worker{i}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "worker",
                        "--redis-url",
                        self.redis.url,
                        "--prefix",
                        PREFIX,
                        "--classes",
                        "cpu",
                        "--slots",
                        str(self.slots),
                        "--id",
                        f"bench-w{i}",
                        "--data-dir",
                        str(self.tmp / f"w{i}"),
                    ],
                    env=env,
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/v1/status", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        TOKEN["admin"] = (self.tmp / "data" / "admin.token").read_text().strip()
        client = aredis.Redis.from_url(self.redis.url, decode_responses=True)
        while (
            int(await client.hget(f"{PREFIX}:capacity", "cpu") or 0) < self.slots * self.n_workers
        ):
            await asyncio.sleep(0.05)
        await client.aclose()

    async def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await self.redis.stop()


async def run_and_wait(stack: Stack, client: aredis.Redis, wf: dict[str, Any]) -> dict[str, str]:
    post(stack.url, "/api/v1/workflow/publish", wf)
    out = await asyncio.to_thread(post, stack.url, "/api/v1/workflow/execute", {"name": wf["name"]})
    run = out["run"]
    while True:
        h = await client.hgetall(f"{PREFIX}:run:{run}")
        if h.get("state") in ("succeeded", "failed", "cancelled"):
            if h["state"] != "succeeded":
                raise RuntimeError(f"benchmark run {run} {h['state']}")
            return h
        await asyncio.sleep(0.01)


async def settle(client: aredis.Redis, timeout_s: float = 120.0) -> float:
    """Wait until the broker's background readers of the events stream (archiver, provenance)
    have caught up, so the next workload is measured on its own. Returns the seconds waited."""
    t0 = time.monotonic()
    key = f"{PREFIX}:events"
    while time.monotonic() - t0 < timeout_s:
        info = await client.xinfo_stream(key)
        last = info["last-generated-id"]
        groups = {g["name"]: g for g in await client.xinfo_groups(key)}
        if all(g["last-delivered-id"] == last and g["pending"] == 0
               for name, g in groups.items() if name in ("archiver", "provenance")):
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    return time.monotonic() - t0


def noop_matrix(name: str, n: int) -> dict[str, Any]:
    return {
        "name": name,
        "defaults": {"executor": "noop"},
        "nodes": {"t": {"matrix": {"i": list(range(n))}}},
    }


async def w1(stack: Stack, client: aredis.Redis, n: int) -> dict[str, Any]:
    t0 = time.time()
    h = await run_and_wait(stack, client, noop_matrix("w1", n))
    wall = time.time() - t0
    span_s = (int(h["finished_at"]) - int(h["created_at"])) / 1000
    return {"tasks": n, "seconds": span_s, "tasks_per_s": n / span_s, "wall_s": wall}


async def w2(stack: Stack, client: aredis.Redis, n: int) -> dict[str, Any]:
    nodes = {f"s{i}": {**({"after": [f"s{i - 1}"]} if i else {})} for i in range(n)}
    h = await run_and_wait(
        stack, client, {"name": "w2", "defaults": {"executor": "noop"}, "nodes": nodes}
    )
    span_ms = int(h["finished_at"]) - int(h["started_at"])
    return {"hops": n, "ms_per_hop": span_ms / n, "seconds": span_ms / 1000}


async def w3(stack: Stack, client: aredis.Redis, n: int) -> dict[str, Any]:
    wf = {
        "name": "w3",
        "defaults": {"executor": "noop"},
        "nodes": {
            "src": {},
            "mid": {"after": ["src"], "matrix": {"i": list(range(n))}},
            "sink": {"after": ["mid"]},
        },
    }
    h = await run_and_wait(stack, client, wf)
    return {"width": n, "seconds": (int(h["finished_at"]) - int(h["created_at"])) / 1000}


async def w4(stack: Stack, client: aredis.Redis, n: int) -> dict[str, Any]:
    wf = {
        "name": "w4",
        "defaults": {"executor": "noop", "resources": {"class": "w4"}},
        "nodes": {
            "src": {},
            "mid": {"after": ["src"], "matrix": {"i": list(range(n - 2))}},
            "sink": {"after": ["mid"]},
        },
    }
    post(stack.url, "/api/v1/workflow/publish", wf)
    before = int((await client.info("memory"))["used_memory"])
    t0 = time.perf_counter()
    out = await asyncio.to_thread(post, stack.url, "/api/v1/workflow/execute", {"name": "w4"})
    seconds = time.perf_counter() - t0
    after = int((await client.info("memory"))["used_memory"])
    post(stack.url, "/api/v1/workflow/cancel", {"run": out["run"]})
    return {"tasks": n, "seconds": seconds, "bytes_per_task": (after - before) / n}


async def floor(url: str, n: int, batch: int = 500) -> dict[str, Any]:
    """The same Redis commands per task as the broker path, from one redis-py script."""
    r = aredis.Redis.from_url(url, decode_responses=True)
    p = "floor"
    await r.delete(f"{p}:q", f"{p}:done", f"{p}:ready")
    await r.xgroup_create(f"{p}:q", "w", id="0", mkstream=True)
    await r.xgroup_create(f"{p}:done", "b", id="0", mkstream=True)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        ids = range(start, min(n, start + batch))
        pipe = r.pipeline(transaction=False)
        for i in ids:  # expansion: task hash + ready set
            pipe.hset(f"{p}:t:{i}", mapping={"state": "ready", "attempt": 1, "class": "cpu"})
            pipe.zadd(f"{p}:ready", {str(i): i})
        await pipe.execute()
        popped = await r.zpopmin(f"{p}:ready", len(ids))  # dispatch
        pipe = r.pipeline(transaction=False)
        for member, _ in popped:
            pipe.hset(f"{p}:t:{member}", "state", "dispatched")
            pipe.xadd(f"{p}:q", {"run": "x", "node": member, "attempt": "1"})
        await pipe.execute()
        got = await r.xreadgroup("w", "c", {f"{p}:q": ">"}, count=len(ids))  # worker read
        pipe = r.pipeline(transaction=True)
        for _s, entries in got:
            for eid, f in entries:  # completion + ack
                pipe.xadd(f"{p}:done", {"node": f["node"], "outcome": "succeeded"})
                pipe.xack(f"{p}:q", "w", eid)
                pipe.xdel(f"{p}:q", eid)
        await pipe.execute()
        got = await r.xreadgroup("b", "c", {f"{p}:done": ">"}, count=len(ids))  # broker read
        pipe = r.pipeline(transaction=False)
        for _s, entries in got:
            for eid, f in entries:  # apply
                pipe.hset(f"{p}:t:{f['node']}", "state", "succeeded")
                pipe.hincrby(f"{p}:run", "n_succeeded", 1)
                pipe.xack(f"{p}:done", "b", eid)
                pipe.xdel(f"{p}:done", eid)
        await pipe.execute()
    seconds = time.perf_counter() - t0
    await r.aclose()
    return {"tasks": n, "seconds": seconds, "tasks_per_s": n / seconds}


def table(results: dict[str, dict[str, Any]], meta: dict[str, str]) -> str:
    w1r, w2r, w3r, w4r, fl = (results[k] for k in ("W1", "W2", "W3", "W4", "floor"))
    rows = [
        (
            "W1",
            f"{w1r['tasks']:,} independent no-op tasks",
            f"{w1r['tasks_per_s']:,.0f} tasks/s ({w1r['seconds']:.2f} s submit → last completion)",
            "≥ 3,000 tasks/s",
        ),
        (
            "W2",
            f"chain of {w2r['hops']} no-op tasks",
            f"{w2r['ms_per_hop']:.2f} ms per hop",
            "≤ 2 ms",
        ),
        ("W3", f"1 → {w3r['width']:,} → 1 fan-out/fan-in", f"{w3r['seconds']:.2f} s", "≤ 1 s"),
        (
            "W4",
            f"expansion of a {w4r['tasks']:,}-task DAG",
            f"{w4r['seconds']:.2f} s, {w4r['bytes_per_task']:.0f} bytes of Redis memory per task",
            "≤ 10 s",
        ),
        (
            "floor",
            f"bare redis-py, same commands per task, pipelined ({fl['tasks']:,})",
            f"{fl['tasks_per_s']:,.0f} tasks/s",
            "(reference)",
        ),
    ]
    lines = ["| workload | what | measured | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    head = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    return f"{head}\n\n" + "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="dagb-bench-"))
    stack = Stack(tmp, workers=2, slots=args.slots)
    await stack.start()
    client = aredis.Redis.from_url(stack.redis.url, decode_responses=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        print("W1 …", flush=True)
        results["W1"] = await w1(stack, client, args.w1)
        results["settle_s"] = {"after_W1": await settle(client)}
        print("W2 …", flush=True)
        results["W2"] = await w2(stack, client, args.w2)
        results["settle_s"]["after_W2"] = await settle(client)
        print("W3 …", flush=True)
        results["W3"] = await w3(stack, client, args.w3)
        results["settle_s"]["after_W3"] = await settle(client)
        print("W4 …", flush=True)
        results["W4"] = await w4(stack, client, args.w4)
        print("floor …", flush=True)
        results["floor"] = await floor(stack.redis.url, args.w1)
        info = await client.info("server")
    finally:
        await client.aclose()
        await stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["_meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
        "python": platform.python_version(),
        "redis": f"{info['redis_version']} (embedded, AOF everysec)",
        "setup": f"1 broker process, 2 worker processes × {args.slots} slots",
    }
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--w1", type=int, default=10_000)
    ap.add_argument("--w2", type=int, default=500)
    ap.add_argument("--w3", type=int, default=2_000)
    ap.add_argument("--w4", type=int, default=100_000)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--json", help="also write raw results here")
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    meta = results.pop("_meta")
    settled = results.pop("settle_s", {})
    meta["background"] = ("each workload starts once the broker's archiver and provenance "
                          "readers have caught up with the previous one (" + ", ".join(
                              f"{k} {v:.1f} s" for k, v in settled.items()) + ")")
    text = table(results, meta)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "meta": meta}, indent=2))
    out = Path(args.out)
    doc = out.read_text() if out.exists() else ""
    marker_start, marker_end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = f"{marker_start}\n{text}{marker_end}"
    if marker_start in doc:
        doc = (
            doc[: doc.index(marker_start)] + block + doc[doc.index(marker_end) + len(marker_end) :]
        )
    else:
        doc = (
            "# Benchmarks\n\nMeasured by `scripts/bench` (numbers below are rewritten by each "
            "run).\n\n" + block + "\n"
        )
    out.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
