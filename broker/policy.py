"""Deployment policy (Kepler's restricted actors): what workflows may run here.

A JSON or YAML file named by `serve --policy FILE`:

    forbid_executors: [ssh]               # a node using one is rejected at publish
    forbid_commands: ['rm\\s+-rf\\s+/']    # regexes over commands and scripts
    substitute_executors: {slurm: shell}  # replaced at execute instead; the run gets a message
    software: [python3, gromacs]          # what runners provide (shown in /api/v1/status)

Rejections name the node, the field and the rule that matched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from broker.errors import InvalidWorkflow
from broker.spec import Node, Workflow


class Policy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    forbid_executors: list[str] = []
    forbid_commands: list[str] = []
    substitute_executors: dict[str, str] = {}
    software: list[str] = []

    def __post_init__(self) -> None:
        for i, pattern in enumerate(self.forbid_commands):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"policy forbid_commands[{i}]: bad regex {pattern!r}: {e}") from e

    def check(self, wf: Workflow) -> None:
        """Raise InvalidWorkflow listing every node that breaks a rule."""
        errors = [e for nid, node in wf.nodes.items() for e in self._node_errors(nid, node, wf)]
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidWorkflow(
                f"node '{first['node']}', field '{first['field']}': {first['message']}{more}",
                {**{k: v for k, v in first.items() if k != "message"}, "errors": errors},
            )

    def _node_errors(self, nid: str, node: Node, wf: Workflow) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        executor = node.executor or (wf.defaults.executor if wf.defaults else None) or "shell"
        if executor in self.forbid_executors and executor not in self.substitute_executors:
            out.append({"node": nid, "field": "executor", "rule": "forbid_executors",
                        "message": f"executor '{executor}' is forbidden by this broker's policy"})
        commands = node.command if isinstance(node.command, list) else [node.command or ""]
        text = " ".join(commands) + ("\n" + node.script if node.script else "")
        for i, pattern in enumerate(self.forbid_commands):
            if re.search(pattern, text):
                out.append({"node": nid, "field": "command", "rule": f"forbid_commands[{i}]",
                            "message": f"command matches the forbidden pattern {pattern!r}"})
        return out

    def substitute(self, wf: Workflow) -> tuple[Workflow, list[tuple[str, str]]]:
        """Replace substituted executors; returns the workflow and (node, message) notices."""
        if not self.substitute_executors:
            return wf, []
        notes: list[tuple[str, str]] = []
        nodes = dict(wf.nodes)
        for nid, node in wf.nodes.items():
            executor = node.executor or (wf.defaults.executor if wf.defaults else None) or "shell"
            new = self.substitute_executors.get(executor)
            if new:
                nodes[nid] = msgspec.structs.replace(node, executor=new)  # type: ignore[arg-type]
                notes.append((nid, f"policy: node {nid} runs with executor '{new}' "
                                   f"instead of '{executor}'"))
        return msgspec.structs.replace(wf, nodes=nodes), notes


def load_policy(path: str | None) -> Policy:
    if not path:
        return Policy()
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        doc = yaml.safe_load(text) or {}
    else:
        doc = json.loads(text)
    return msgspec.convert(doc, Policy)
