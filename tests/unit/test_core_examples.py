"""Every file in examples/ parses, validates and expands; and each one really runs.

The run here is a tiny stand-in for a worker (no Redis): tasks in topological order, each
with the worker's environment contract — DAGB_INPUTS (a JSON file: parent task id → its
result) and DAGB_RESULT (where the task writes its own result as JSON) — and the template
rules of broker.core.template (shell commands quoted, scripts and env as text, kwargs typed).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.core.expand import Plan, expand
from broker.core.parse import parse_workflow
from broker.core.template import render, render_any

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def load(path: Path) -> Plan:
    return expand(parse_workflow(path.read_bytes()))


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES} >= {"diamond.json", "matrix.json", "python.json"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_expands(path: Path) -> None:
    plan = load(path)
    assert plan.tasks
    json.loads(path.read_text())  # plain JSON, no comments


def run_plan(plan: Plan, tmp: Path) -> dict[str, Any]:
    """Run every task in order; → {task id: result}. Fails the test on a task's failure."""
    results: dict[str, Any] = {}
    path_env = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    for i, task in enumerate(plan.tasks):
        spec = plan.templates[task.tpl]
        values = {
            **plan.params,
            **(task.vars or {}),
            "run": "r1",
            "node": task.id,
            "task": task.tpl,
            "attempt": 1,
        }
        inputs_path, result_path = tmp / f"{i}.inputs.json", tmp / f"{i}.result.json"
        inputs_path.write_text(json.dumps({p: results[p] for p in task.parents}))
        env = {
            **os.environ,
            "PATH": path_env,
            **{k: render(v, values) for k, v in spec.env.items()},
        }
        env |= {
            "DAGB_INPUTS": str(inputs_path),
            "DAGB_RESULT": str(result_path),
            "DAGB_RUN": "r1",
            "DAGB_NODE": task.id,
            "DAGB_TASK": task.tpl,
            "DAGB_ATTEMPT": "1",
        }
        if spec.executor == "noop":
            results[task.id] = None
            continue
        if spec.executor == "python" and spec.callable:
            module, _, name = spec.callable.partition(":")
            results[task.id] = getattr(importlib.import_module(module), name)(
                **render_any(spec.kwargs, values)
            )
            continue
        if spec.executor == "shell":
            if isinstance(spec.command, str):
                argv = ["/bin/sh", "-c", render(spec.command, values, shell_quote=True)]
            else:
                argv = [render(a, values) for a in spec.command or []]
        elif spec.script is not None:
            argv = [sys.executable, "-c", render(spec.script, values)]
        else:
            assert isinstance(spec.command, list)
            argv = [sys.executable, *(render(a, values) for a in spec.command)]
        out = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (task.id, out.stdout, out.stderr)
        results[task.id] = json.loads(result_path.read_text()) if result_path.exists() else None
    return results


def test_diamond_runs(tmp_path: Path) -> None:
    plan = load(EXAMPLES[0].parent / "diamond.json")
    assert [t.id for t in plan.tasks][0] == "prepare" and plan.tasks[-1].id == "combine"
    assert plan.tasks[0].max_attempts == 3
    results = run_plan(plan, tmp_path)
    assert results["prepare"] == {"n": 10}
    assert results["combine"] == {"sum": 55, "squares": 385}
    plan = expand(parse_workflow((EXAMPLES[0].parent / "diamond.json").read_bytes()), {"n": 3})
    assert run_plan(plan, tmp_path)["combine"] == {"sum": 6, "squares": 14}


def test_matrix_runs(tmp_path: Path) -> None:
    plan = load(EXAMPLES[0].parent / "matrix.json")
    sims = [t for t in plan.tasks if t.tpl == "simulate"]
    assert len(sims) == 6
    analyze = next(t for t in plan.tasks if t.id == "analyze")
    assert analyze.parents == [t.id for t in sims]
    results = run_plan(plan, tmp_path)
    assert results["analyze"]["temperature"] == 350 and results["analyze"]["pressure"] == 1
    assert results["analyze"]["best"] in {t.id for t in sims}


def test_python_runs(tmp_path: Path) -> None:
    plan = load(EXAMPLES[0].parent / "python.json")
    results = run_plan(plan, tmp_path)
    assert results["mean"] == 4.0
    assert results["check"] == {"mean": 4.0, "ok": True}
