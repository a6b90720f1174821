"""The native workflow format as msgspec Structs (docs/workflow-format.md).

Decoding rejects unknown fields and wrong types; `broker.core.validate` checks the rest
(references, cycles, placeholders). Pure: importable by the worker.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

NODE_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
PRIORITY_MIN = -1000
PRIORITY_MAX = 1000

NodeId = Annotated[str, Meta(pattern=NODE_ID_PATTERN)]
Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
Priority = Annotated[int, Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
Seconds = Annotated[float, Meta(ge=0)]
EVENT_KEY_PATTERN = r"^[A-Za-z0-9_.:\-]{1,200}$"
EventKey = Annotated[str, Meta(pattern=EVENT_KEY_PATTERN)]

# Executors a node may name. A worker advertises which it has; a task waits for a runner that
# has its executor (`event` tasks are completed by the broker when their event arrives).
Executor = Literal["shell", "python", "noop", "slurm", "ssh", "aws_batch", "event"]
Trigger = Literal["all_success", "all_done"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
ArtifactName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-/*?\[\]]{0,255}$")]


class Condition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """A pre- or post-condition; exactly one of file, artifact, command, result is set.

    `result` names an upstream value as `<node>` or `<node>.<key>[.<key>…]`, compared with
    `op` against `value`.
    """

    file: str | None = None
    artifact: str | None = None
    command: str | list[str] | None = None
    result: str | None = None
    op: CompareOp = "=="
    value: Any = None
    description: str = ""


class SubWorkflow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """The body of an ensemble node: copied once per parameter combination."""

    nodes: dict[NodeId, Node]
    params: dict[Annotated[str, Meta(pattern=r"^[A-Za-z_]\w*$")], Any] = {}
    defaults: NodeDefaults | None = None


class Resources(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What a task needs. `class` pins the resource class; otherwise it is derived."""

    cores: Annotated[float, Meta(gt=0, le=4096)] = 1
    memory: str | Annotated[int, Meta(ge=0)] | None = None  # MiB, or "512M", "4G"
    gpus: Annotated[int, Meta(ge=0, le=64)] = 0
    disk: str | Annotated[int, Meta(ge=0)] | None = None
    walltime: str | Seconds | None = None  # seconds, or "HH:MM:SS"
    labels: dict[str, str] = {}
    class_: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = msgspec.field(
        default=None, name="class"
    )


class NodeDefaults(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Fields that `defaults` may set for every node."""

    executor: Executor | None = None
    resources: Resources | None = None
    priority: Priority | None = None
    retries: Annotated[int, Meta(ge=0, le=100)] | None = None
    retry_backoff: Seconds | None = None
    timeout: Annotated[float, Meta(gt=0)] | None = None
    env: dict[str, str] | None = None
    workdir: str | None = None


class Node(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One node of a workflow; a matrix node expands into one task per combination."""

    executor: Executor | None = None
    description: str = ""
    command: str | list[str] | None = None
    script: str | None = None
    callable: Annotated[str, Meta(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = None
    kwargs: dict[str, Any] = {}
    after: list[NodeId] = []
    trigger: Trigger = "all_success"
    resources: Resources | None = None
    priority: Priority | None = None
    retries: Annotated[int, Meta(ge=0, le=100)] | None = None
    retry_backoff: Seconds | None = None
    timeout: Annotated[float, Meta(gt=0)] | None = None
    env: dict[str, str] | None = None
    workdir: str | None = None
    matrix: dict[Annotated[str, Meta(pattern=r"^[A-Za-z_]\w*$")], list[Any]] | None = None
    # ensembles (issue 3): kind "ensemble" + workflow + parameters (a list of dicts, or a matrix)
    kind: Literal["task", "ensemble"] = "task"
    workflow: SubWorkflow | None = None
    parameters: list[dict[str, Any]] | dict[str, list[Any]] | None = None
    # conditions (issue 3): pre re-checked with backoff up to pre_retries; post checked once
    pre: list[Condition] = []
    post: list[Condition] = []
    pre_retries: Annotated[int, Meta(ge=0, le=1000)] = 10
    pre_backoff: Seconds = 1.0
    # artifacts (issue 5): names (or globs, for outputs) relative to the task's workdir
    inputs: list[ArtifactName] = []
    outputs: list[ArtifactName] = []
    # executor-specific (issue 5): ssh inventory host, container image for aws_batch
    host: str | None = None
    image: str | None = None
    init: str | list[str] | None = None  # runs once per batch before its tasks
    # events (issue 4): an `event` node waits until this key is pushed
    wait_for: EventKey | None = None


class Workflow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """A workflow document as published."""

    name: Name
    nodes: dict[NodeId, Node]
    description: str = ""
    priority: Priority = 0
    params: dict[Annotated[str, Meta(pattern=r"^[A-Za-z_]\w*$")], Any] = {}
    defaults: NodeDefaults | None = None
    # events (issue 4): a push of one of these keys (by the owner) starts a run of the latest
    # revision, with the payload as parameter `event` when the workflow declares it
    on_event: list[EventKey] = []


class TaskSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A node with defaults applied: what a worker needs to run it (stored once per node)."""

    node: str
    executor: str
    command: str | list[str] | None = None
    script: str | None = None
    callable: str | None = None
    kwargs: dict[str, Any] = {}
    timeout_s: float | None = None
    env: dict[str, str] = {}
    workdir: str | None = None
    cores: float = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime_s: float | None = None
    disk_mb: int | None = None
    labels: dict[str, str] = {}
    inputs: list[str] = []
    outputs: list[str] = []
    pre: list[Condition] = []
    post: list[Condition] = []
    pre_retries: int = 10
    pre_backoff_s: float = 1.0
    host: str | None = None
    image: str | None = None
    init: str | list[str] | None = None
    wait_for: str | None = None


workflow_decoder = msgspec.json.Decoder(Workflow)
task_spec_encoder = msgspec.json.Encoder()
task_spec_decoder = msgspec.json.Decoder(TaskSpec)
