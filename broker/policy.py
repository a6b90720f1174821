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

from broker.core.ensemble import merged_defaults
from broker.errors import InvalidWorkflow
from broker.spec import Node, NodeDefaults, Workflow


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
        """Raise InvalidWorkflow listing every node (ensemble sub-nodes too) that breaks a rule."""
        errors = [
            e
            for nid, node, defaults in _all_nodes(wf)
            for e in self._node_errors(nid, node, defaults)
        ]
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidWorkflow(
                f"node '{first['node']}', field '{first['field']}': {first['message']}{more}",
                {**{k: v for k, v in first.items() if k != "message"}, "errors": errors},
            )

    def _node_errors(
        self, nid: str, node: Node, defaults: NodeDefaults | None
    ) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        if node.kind == "ensemble":
            return out  # its sub-nodes are checked one by one
        executor = node.executor or (defaults.executor if defaults else None) or "shell"
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
        """Replace substituted executors (ensemble sub-nodes too); returns the workflow and
        (node, message) notices."""
        if not self.substitute_executors:
            return wf, []
        notes: list[tuple[str, str]] = []
        nodes = self._substitute_nodes(wf.nodes, wf.defaults, "", notes)
        return msgspec.structs.replace(wf, nodes=nodes), notes

    def _substitute_nodes(
        self, nodes: dict[str, Node], defaults: NodeDefaults | None, prefix: str,
        notes: list[tuple[str, str]],
    ) -> dict[str, Node]:
        out = dict(nodes)
        for nid, node in nodes.items():
            if node.kind == "ensemble" and node.workflow is not None:
                sub = node.workflow
                inner = merged_defaults(defaults, sub.defaults)
                new_nodes = self._substitute_nodes(sub.nodes, inner, f"{prefix}{nid}.", notes)
                out[nid] = msgspec.structs.replace(
                    node, workflow=msgspec.structs.replace(sub, nodes=new_nodes)
                )
                continue
            executor = node.executor or (defaults.executor if defaults else None) or "shell"
            new = self.substitute_executors.get(executor)
            if new:
                out[nid] = msgspec.structs.replace(node, executor=new)  # type: ignore[arg-type]
                notes.append((f"{prefix}{nid}", f"policy: node {prefix}{nid} runs with executor "
                                                f"'{new}' instead of '{executor}'"))
        return out


def _all_nodes(wf: Workflow) -> list[tuple[str, Node, NodeDefaults | None]]:
    """Every node with the defaults that apply to it; ensemble sub-nodes as `ens.sub`."""
    out: list[tuple[str, Node, NodeDefaults | None]] = []
    for nid, node in wf.nodes.items():
        out.append((nid, node, wf.defaults))
        if node.kind == "ensemble" and node.workflow is not None:
            inner = merged_defaults(wf.defaults, node.workflow.defaults)
            out += [(f"{nid}.{sid}", sub, inner) for sid, sub in node.workflow.nodes.items()]
    return out


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
