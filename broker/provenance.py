"""Provenance manifests: what exactly produced a finished run's results.

`collect_manifest` reads a finished run from Redis (run hash, task hashes, node specs and the
artifact index `{prefix}:artifacts:{run}`) and `build_manifest` turns it into one JSON
document (format 1, documented in docs/revisions.md):

    {"format": 1, "run", "workflow", "owner", "revision", "state", "reason", "params",
     "priority", "created_at", "started_at", "finished_at",
     "tasks": {task id: {"node", "revision", "parameters", "state", "attempts", "runner",
                         "executor", "exit_code", "started_at", "finished_at", "reason",
                         "result_sha256", "upstream": {parent: sha256 | null},
                         "outputs": {name: {"sha256", "size", ...}}}}}

A result's hash is the sha256 of its canonical JSON (keys sorted, no spaces, UTF-8), so
`upstream` names exactly the values each task was given. `index_entries` lists the hashes a
manifest makes findable: every output, and the result of every task that has one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

import msgspec

from broker.engine import queries
from broker.spec import TaskSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.keys import Keys

FORMAT = 1
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
MAX_INDEXED_RESULTS = 1000  # per run; every output is indexed
_spec_decoder = msgspec.json.Decoder(TaskSpec)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def result_sha256(value: Any) -> str | None:
    """sha256 of a result's canonical JSON; None for a task without a result."""
    return None if value is None else hashlib.sha256(canonical_json(value)).hexdigest()


def _executor(spec_text: str | None) -> str:
    if not spec_text:
        return ""
    try:
        return str(_spec_decoder.decode(spec_text).executor)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _outputs(artifacts: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The artifact index (`task/name` → JSON record) grouped by task, then name."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for field, value in artifacts.items():
        try:
            rec = json.loads(value)
        except ValueError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
            continue
        task = rec.get("task") or field.split("/", 1)[0]
        name = rec.get("name") or field.split("/", 1)[-1]
        out.setdefault(task, {})[name] = {
            k: v for k, v in rec.items() if k not in ("task", "name")
        }
    return out


def build_manifest(
    run: str,
    h: dict[str, str],
    tasks: list[dict[str, Any]],
    specs: dict[str, str],
    artifacts: dict[str, str],
) -> dict[str, Any]:
    """Pure: the manifest of `run` from its run hash, task views, specs and artifact index."""
    view = queries.run_view(run, h)
    revision = view["revision"]
    by_id = {t["id"]: t for t in tasks}
    outputs = _outputs(artifacts)
    out_tasks: dict[str, Any] = {}
    for t in tasks:
        out_tasks[t["id"]] = {
            "node": t["node"],
            "revision": revision,
            "parameters": t.get("vars") or {},
            "state": t["state"],
            "attempts": t.get("attempt") or 0,
            "runner": t.get("runner") or "",
            "executor": _executor(specs.get(t["node"])),
            "exit_code": t.get("exit_code"),
            "started_at": t.get("started_at"),
            "finished_at": t.get("finished_at"),
            "reason": t.get("reason") or "",
            "result_sha256": result_sha256(t.get("result")),
            "upstream": {p: result_sha256(by_id.get(p, {}).get("result"))
                         for p in t.get("parents") or []},
            "outputs": outputs.get(t["id"], {}),
        }
    return {
        "format": FORMAT,
        "run": run,
        "workflow": view["name"],
        "owner": view["owner"],
        "revision": revision,
        "state": view["state"],
        "reason": view["reason"],
        "params": view["params"],
        "priority": view["priority"],
        "created_at": view["created_at"],
        "started_at": view["started_at"],
        "finished_at": view["finished_at"],
        "recorded_at": int(time.time() * 1000),
        "tasks": out_tasks,
    }


def index_entries(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(sha256, entry) for every output and (up to MAX_INDEXED_RESULTS) result of a manifest."""
    common = {k: manifest[k] for k in ("run", "workflow", "owner", "revision", "finished_at")}
    out: list[tuple[str, dict[str, Any]]] = []
    results = 0
    for tid, t in manifest["tasks"].items():
        for name, rec in t["outputs"].items():
            out.append((rec["sha256"], {**common, "task": tid, "kind": "output", "name": name}))
        if t["result_sha256"] and results < MAX_INDEXED_RESULTS:
            results += 1
            out.append((t["result_sha256"],
                        {**common, "task": tid, "kind": "result", "name": "result"}))
    return out


async def collect_manifest(redis: Redis, keys: Keys, run: str) -> dict[str, Any] | None:
    """The manifest of a run as Redis holds it now; None if Redis no longer has the run."""
    h = await redis.hgetall(keys.run(run))
    if not h:
        return None
    tasks = await queries.get_tasks(redis, keys, run)
    specs = await redis.hgetall(keys.spec(run))
    artifacts = await redis.hgetall(keys.artifacts(run))
    # a run may have 100k tasks: build the document off the event loop
    return await asyncio.to_thread(build_manifest, run, h, tasks, specs, artifacts)
