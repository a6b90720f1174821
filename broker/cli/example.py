"""`dagbroker up --example FILE`: publish and run one workflow, printing its progress."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

TERMINAL = ("succeeded", "failed", "cancelled")


def progress_line(run: dict) -> str:
    counts = run.get("counts", {})
    parts = " ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{time.strftime('%H:%M:%S')} run {run['id']} {run['state']:<10} {parts}"


async def run_example(url: str, path: Path, stop: asyncio.Event, token: str) -> int:
    """Returns 0 if the run succeeded, 1 otherwise."""
    ctype = "application/yaml" if path.suffix in (".yaml", ".yml") else "application/json"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, headers=headers) as http:
        async with http.post(
            "/api/v1/workflow/publish",
            data=await asyncio.to_thread(path.read_bytes),
            headers={"Content-Type": ctype},
        ) as r:
            pub = await r.json()
            if r.status >= 400:
                print(f"example: publish failed: {pub['error']['message']}", flush=True)
                return 1
        print(f"published {pub['name']} at revision {pub['revision'][:12]}", flush=True)
        async with http.post("/api/v1/workflow/execute", json={"name": pub["name"]}) as r:
            ex = await r.json()
            if r.status >= 400:
                print(f"example: execute failed: {ex['error']['message']}", flush=True)
                return 1
        run_id = ex["run"]
        print(f"run {run_id}: {ex['tasks']} tasks", flush=True)
        last = ""
        while not stop.is_set():
            async with http.get("/api/v1/workflow/status", params={"run": run_id}) as r:
                st = await r.json()
            line = progress_line(st["run"])
            if line.split(" ", 1)[1] != last:
                print(line, flush=True)
                last = line.split(" ", 1)[1]
            if st["run"]["state"] in TERMINAL:
                for t in st["tasks"]:
                    extra = f" result={t['result']}" if t.get("result") is not None else ""
                    why = f" ({t['reason']})" if t.get("reason") else ""
                    print(f"  {t['id']:<24} {t['state']:<16}{why}{extra}", flush=True)
                print(f"run {run_id} {st['run']['state']}: {url}/api/v1/runs/{run_id}", flush=True)
                return 0 if st["run"]["state"] == "succeeded" else 1
            await asyncio.sleep(0.3)
    return 1
