"""Batching benchmark: 200 short tasks through a real worker, with batching on and off.

For each case: an embedded redis-server, the tasks dispatched onto the class stream exactly as
the broker's dispatch writes them (task hash + stream entry, all at once), one `python -m
worker` process, and the time from dispatch to the last completion on `done`.

  python  200 python `callable` tasks (a module importing a few stdlib packages, returning
          its pid): batching on (default) vs `--batch-max 1`. Interpreter starts are counted
          from the pids the tasks return; executor calls from the worker's one log line per
          python batch.
  slurm   200 `true` tasks on a single-node SLURM cluster (tests/peers/start-slurm.sh), if
          SLURM is installed and this runs as root: sbatch calls counted by a wrapper on the
          worker's PATH. Otherwise the table says why there is no measurement.

Called by `scripts/bench --batching`; writes the block between the bench:batching markers
of docs/benchmarks.md. Nothing here is asserted in a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.embedded_redis import EmbeddedRedis, free_tcp_port  # noqa: E402
from broker.keys import Keys  # noqa: E402
from broker.spec import TaskSpec, task_spec_encoder  # noqa: E402
from broker.wire import Completion  # noqa: E402

PEERS = ROOT / "tests" / "peers"
MODULE = """
import asyncio, decimal, email.mime.multipart, http.client, os, statistics

def work(i):
    return {"i": i, "pid": os.getpid(), "mean": statistics.fmean(range(i + 1))}
"""
# 64 cold interpreters starting at once on 2 cores starve the worker's loop for seconds: with
# the default TTL (10 s) it fences itself (tasks reported lost); this measures throughput.
HEARTBEAT = ["--heartbeat-ttl", "60"]
BATCH_LINE = re.compile(r"batch of (\d+) python task\(s\) ran in (\d+) warm interpreter")


async def dispatch(r: aredis.Redis, keys: Keys, n: int, spec: TaskSpec, run: str) -> None:
    """n tasks `t[i]` of one node, as dispatch_class in broker/engine/lua/lib.lua writes them."""
    spec_json = task_spec_encoder.encode(spec).decode()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        node = f"t[{i}]"
        pipe.hset(keys.task(run, node), mapping={
            "state": "dispatched", "attempt": 1, "class": "cpu", "tpl": "t"})
        pipe.xadd(keys.queue("cpu"), {
            "run": run, "node": node, "attempt": "1", "tpl": "t",
            "batch": f"{spec.executor}:cpu:bench", "spec": spec_json,
            "vars": json.dumps({"i": i}), "params": "{}", "parents": "", "priority": "0",
        })
    await pipe.execute()


async def wait_done(r: aredis.Redis, keys: Keys, n: int, timeout_s: float) -> list[Completion]:
    deadline = time.monotonic() + timeout_s
    while await r.xlen(keys.done()) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} completions after {timeout_s}s")
        await asyncio.sleep(0.02)
    entries: Any = await r.xrange(keys.done())
    return [Completion.from_fields(f) for _, f in entries]


def worker_flags(slots: int) -> list[str]:
    """--slots, and --cores where this worker accounts for cores (short tasks: oversubscribe)."""
    out = subprocess.run([sys.executable, "-m", "worker", "--help"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    flags = ["--slots", str(slots)]
    return flags + (["--cores", str(slots)] if "--cores" in out.stdout else [])


async def one_case(
    redis_url: str, tmp: Path, name: str, spec: TaskSpec, n: int, batch_max: int,
    slots: int, extra_env: dict[str, str], extra_args: list[str],
) -> dict[str, Any]:
    prefix = f"bb-{name}-{batch_max}"
    keys = Keys(prefix)
    r = aredis.Redis.from_url(redis_url, decode_responses=True)
    log_path = tmp / f"{prefix}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    runner = f"bench-{prefix}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--redis-url", redis_url, "--prefix", prefix,
             "--classes", "cpu", *worker_flags(slots), "--id", runner, "--batch-max",
             str(batch_max), "--data-dir", str(tmp / prefix), *HEARTBEAT, *extra_args],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )
    try:
        while not await r.exists(keys.heartbeat(runner)):
            await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await dispatch(r, keys, n, spec, f"run-{batch_max}")
        done = await wait_done(r, keys, n, timeout_s=1800)
        wall_s = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
        await r.aclose()
    failed = [c for c in done if c.outcome.value != "succeeded"]
    if failed:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name}: {len(failed)} task(s) failed, e.g. {failed[0].reason}; "
                           f"the worker's log ends:\n{tail}")
    return {"tasks": n, "batch_max": batch_max, "wall_s": wall_s, "tasks_per_s": n / wall_s,
            "done": done, "log": log_path.read_text(errors="replace")}


async def python_cases(redis_url: str, tmp: Path, n: int, slots: int) -> list[dict[str, Any]]:
    (tmp / "benchmod.py").write_text(MODULE)
    spec = TaskSpec(node="t", executor="python", callable="benchmod:work",
                    kwargs={"i": "{{ i }}"}, workdir=str(tmp))
    out = []
    for batch_max in (0, 1):
        res = await one_case(redis_url, tmp, "python", spec, n, batch_max, slots, {}, [])
        batches = [tuple(map(int, m)) for m in BATCH_LINE.findall(res.pop("log"))]
        pids = {c.result["pid"] for c in res.pop("done")}
        res.update(executor_calls=len(batches), interpreters=len(pids),
                   interpreters_logged=sum(k for _, k in batches))
        out.append(res)
    return out


def slurm_unavailable() -> str:
    if not Path("/usr/sbin/slurmctld").exists() or shutil.which("sbatch") is None:
        return "SLURM is not installed here (scripts/install-peers installs it)"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs its daemons as root; this is not root"
    return ""


def _sbatch_wrapper(bindir: Path, count_file: Path) -> None:
    real = shutil.which("sbatch")
    bindir.mkdir(parents=True, exist_ok=True)
    wrapper = bindir / "sbatch"
    wrapper.write_text(f"#!/bin/sh\necho x >> {count_file}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)


async def slurm_cases(redis_url: str, tmp: Path, n: int, slots: int) -> list[dict[str, Any]]:
    cluster = tmp / "slurm"
    ports = {"SLURMCTLD_PORT": str(free_tcp_port()), "SLURMD_PORT": str(free_tcp_port())}
    subprocess.run([str(PEERS / "start-slurm.sh"), str(cluster)], check=True,
                   capture_output=True, env={**os.environ, **ports})
    out = []
    try:
        spec = TaskSpec(node="t", executor="slurm", command="true", cores=1)
        for batch_max in (0, 1):
            count = tmp / f"sbatch-{batch_max}.count"
            _sbatch_wrapper(tmp / f"bin-{batch_max}", count)
            env = {"SLURM_CONF": str(cluster / "slurm.conf"),
                   "PATH": f"{tmp / f'bin-{batch_max}'}:{os.environ['PATH']}"}
            res = await one_case(redis_url, tmp, "slurm", spec, n, batch_max, slots, env,
                                 ["--slurm-poll-interval", "0.5"])
            res.pop("log"), res.pop("done")
            res["sbatch_calls"] = len(count.read_text().splitlines()) if count.exists() else 0
            out.append(res)
    finally:
        subprocess.run([str(PEERS / "stop-slurm.sh"), str(cluster)], capture_output=True)
    return out


def table(py: list[dict[str, Any]], slurm: list[dict[str, Any]], slurm_why: str,
          meta: dict[str, str]) -> str:
    def mode(r: dict[str, Any]) -> str:
        return "batching on" if r["batch_max"] == 0 else "off (`--batch-max 1`)"

    lines = ["| tasks | batching | wall time | tasks/s | submissions made |",
             "|---|---|---|---|---|"]
    for r in py:
        lines.append(
            f"| {r['tasks']} python callables | {mode(r)} | {r['wall_s']:.2f} s | "
            f"{r['tasks_per_s']:.1f} | {r['executor_calls']} executor calls, "
            f"{r['interpreters']} interpreters started |")
    for r in slurm:
        lines.append(
            f"| {r['tasks']} slurm `true` tasks | {mode(r)} | {r['wall_s']:.2f} s | "
            f"{r['tasks_per_s']:.1f} | {r['sbatch_calls']} sbatch calls |")
    if slurm_why:
        lines.append(f"| 200 slurm tasks | — | not measured: {slurm_why} | — | — |")
    head = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    return f"{head}\n\n" + "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> tuple[list[Any], list[Any], str]:
    tmp = Path(tempfile.mkdtemp(prefix="dagb-bench-batching-"))
    redis = EmbeddedRedis(tmp / "redis")
    await redis.start()
    try:
        print("python …", flush=True)
        py = await python_cases(redis.url, tmp, args.tasks, args.slots)
        why = "skipped (--no-slurm)" if args.no_slurm else slurm_unavailable()
        slurm: list[Any] = []
        if not why:
            print("slurm …", flush=True)
            try:
                slurm = await slurm_cases(redis.url, tmp, args.tasks, args.slots)
            except (subprocess.CalledProcessError, OSError, RuntimeError, TimeoutError) as e:
                why = f"the local SLURM cluster did not work here ({type(e).__name__}: {e})"
    finally:
        await redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return py, slurm, why


def write_block(out: Path, text: str) -> None:
    start, end = "<!-- bench:batching:start -->", "<!-- bench:batching:end -->"
    doc = out.read_text() if out.exists() else "# Benchmarks\n"
    block = f"{start}\n{text}{end}"
    if start in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Batching: 200 short tasks\n\n" + block + "\n"
    out.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--no-slurm", action="store_true", help="python only")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    py, slurm, why = asyncio.run(main_async(args))
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
        "python": platform.python_version(),
        "setup": f"embedded redis-server, 1 worker process × {args.slots} slots "
                 "(`--heartbeat-ttl 60`), tasks dispatched all at once; wall time = dispatch → "
                 "last completion",
    }
    text = table(py, slurm, why, meta)
    print(text)
    write_block(Path(args.out), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
