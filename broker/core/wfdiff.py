"""Structural diff of two workflow documents, and the commit message summarising it. Pure."""

from __future__ import annotations

from typing import Any

import msgspec

MAX_NAMED = 5  # node ids listed in a commit summary before "+N more"


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    """One field's value before and after (None when the field is absent on that side)."""

    old: Any = None
    new: Any = None


class WorkflowDiff(msgspec.Struct, kw_only=True):
    """What changed from one revision of a workflow to another."""

    added: list[str] = []
    removed: list[str] = []
    changed: dict[str, dict[str, FieldChange]] = {}  # node id → field → old/new
    workflow: dict[str, FieldChange] = {}  # top-level fields other than `nodes`

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.workflow)


def _fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, FieldChange]:
    out: dict[str, FieldChange] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key) or (key in old) != (key in new):
            out[key] = FieldChange(old=old.get(key), new=new.get(key))
    return out


def _nodes(doc: dict[str, Any] | None) -> dict[str, Any]:
    nodes = (doc or {}).get("nodes")
    return nodes if isinstance(nodes, dict) else {}


def diff_workflows(old: dict[str, Any] | None, new: dict[str, Any] | None) -> WorkflowDiff:
    """Nodes added / removed / changed (per field), and changed top-level fields.

    A side that is None (not yet published, or deleted) counts as a workflow with no nodes.
    """
    a, b = _nodes(old), _nodes(new)
    changed: dict[str, dict[str, FieldChange]] = {}
    for nid in sorted(set(a) & set(b)):
        if a[nid] != b[nid]:
            left = a[nid] if isinstance(a[nid], dict) else {"": a[nid]}
            right = b[nid] if isinstance(b[nid], dict) else {"": b[nid]}
            changed[nid] = _fields(left, right)
    top_old = {k: v for k, v in (old or {}).items() if k != "nodes"}
    top_new = {k: v for k, v in (new or {}).items() if k != "nodes"}
    return WorkflowDiff(
        added=sorted(set(b) - set(a)),
        removed=sorted(set(a) - set(b)),
        changed=changed,
        workflow=_fields(top_old, top_new) if old is not None and new is not None else {},
    )


def _named(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED])
    more = len(ids) - MAX_NAMED
    return f"{shown}, +{more} more" if more > 0 else shown


def summary(verb: str, name: str, diff: WorkflowDiff) -> str:
    """`publish diamond: +2 nodes (x, y), -1 (z), ~1 changed (a)`."""
    parts: list[str] = []
    if diff.added:
        parts.append(f"+{len(diff.added)} node{'s' if len(diff.added) != 1 else ''} "
                     f"({_named(diff.added)})")
    if diff.removed:
        parts.append(f"-{len(diff.removed)} ({_named(diff.removed)})")
    if diff.changed:
        parts.append(f"~{len(diff.changed)} changed ({_named(list(diff.changed))})")
    if diff.workflow:
        parts.append(f"changed {', '.join(diff.workflow)}")
    return f"{verb} {name}: {', '.join(parts)}" if parts else f"{verb} {name}"


def diff_counts(diff: WorkflowDiff) -> dict[str, list[str]]:
    """The node lists of a diff, as shown per commit in a history."""
    return {"added": diff.added, "removed": diff.removed, "changed": list(diff.changed)}
