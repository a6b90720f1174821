"""The user docs keep up with the code: every key and every workflow field is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import msgspec
import pytest

from broker.keys import Keys
from broker.spec import Node, NodeDefaults, Resources, Workflow
from broker.wire import COMPLETION_FIELDS, TaskState

DOCS = Path(__file__).resolve().parents[2] / "docs"


def key_methods() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(Keys, inspect.isfunction)
        if not name.startswith("_") and not name.endswith("_prefix")
    ]


@pytest.mark.parametrize("method", key_methods())
def test_every_key_is_documented(method: str) -> None:
    fn = getattr(Keys("dagb"), method)
    params = list(inspect.signature(fn).parameters)
    placeholders = {"run": "{run}", "node": "{node}", "rclass": "{class}", "runner": "{id}"}
    args = [placeholders.get(p, "{" + p + "}") for p in params]
    key = fn(*args)
    assert f"`{key}`" in (DOCS / "redis-keys.md").read_text(), key


@pytest.mark.parametrize("struct", [Workflow, Node, NodeDefaults, Resources])
def test_every_workflow_field_is_documented(struct: type[msgspec.Struct]) -> None:
    text = (DOCS / "workflow-format.md").read_text()
    for field in msgspec.structs.fields(struct):
        assert re.search(rf"\| `{re.escape(field.encode_name)}` \|", text), field.encode_name


def test_task_states_and_completion_fields_are_documented() -> None:
    text = (DOCS / "redis-keys.md").read_text()
    for state in TaskState:
        assert f"`{state.value}`" in text
        assert f"n_{state.value}" in text
    for field in COMPLETION_FIELDS:
        assert f"`{field}`" in text
