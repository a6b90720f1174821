"""Response bodies of the REST API, as msgspec Structs, for the OpenAPI document.

Handlers build these answers as plain dicts; the Structs describe them (fields with a default
are optional in the document). Response objects are open: a field added to a handler's
answer does not break a client, and tests/integration/test_openapi_responses.py checks that
real answers match these shapes.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every 4xx/5xx answer: `{"error": {code, message, details}}`."""

    error: ErrorDetail


class QueueOverview(msgspec.Struct, kw_only=True):
    ready: int
    parked: int = 0  # ready, but bigger than every live runner of the class (dagb:unfit)
    in_flight: int
    capacity: int


class RedisInfo(msgspec.Struct, kw_only=True):
    version: str | None
    mode: Literal["embedded", "external"]
    cli: str | None


class Completions(msgspec.Struct, kw_only=True):
    applied: int
    ignored: int


class StatusResponse(msgspec.Struct, kw_only=True):
    """Without a token only `version` and `status`; with one, the broker's overview."""

    version: str
    status: str | None = None
    broker_id: str | None = None
    brokers: int | None = None
    redis: RedisInfo | None = None
    runners: int | None = None
    active_runs: int | None = None
    queues: dict[str, QueueOverview] | None = None
    completions: Completions | None = None


class RunView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    revision: str
    owner: str
    state: str
    reason: str
    counts: dict[str, int]
    params: dict[str, Any]
    phase: str | None = None
    priority: int | None = None
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    total: int | None = None


class TaskView(msgspec.Struct, kw_only=True, rename={"class_": "class"}):
    id: str
    node: str
    state: str
    class_: str
    runner: str
    reason: str
    attempt: int | None
    priority: int | None
    exit_code: int | None
    dispatched_at: int | None
    started_at: int | None
    finished_at: int | None
    result: Any
    vars: dict[str, Any] | None
    parents: list[str]
    tail: str | None = None
    group: str | None = None
    member: int | None = None
    reused_from: str | None = None
    waiting_for: str | None = None  # a parked ready task: what no live runner offers


class RunStatus(msgspec.Struct, kw_only=True):
    run: RunView
    tasks: list[TaskView] | None = None
    messages: list[Any] | None = None


class RunList(msgspec.Struct, kw_only=True):
    runs: list[RunView]


class ExecuteResponse(msgspec.Struct, kw_only=True):
    run: str
    name: str
    revision: str
    tasks: int
    state: str | None = None  # "new" when the run was created with queue=false


class CancelResponse(msgspec.Struct, kw_only=True):
    run: str
    state: str
    running_cancelled: int


class PublishResponse(msgspec.Struct, kw_only=True):
    name: str
    revision: str
    nodes: int
    changed: bool
    owner: str | None = None
    message: str | None = None
    url: str | None = None
    fetch_status: int | None = None


class WorkflowDocument(msgspec.Struct, kw_only=True):
    name: str
    revision: str
    workflow: dict[str, Any]
    owner: str | None = None


class WorkflowList(msgspec.Struct, kw_only=True):
    workflows: list[str]
    owner: str | None = None
    items: list[dict[str, Any]] | None = None


class Whoami(msgspec.Struct, kw_only=True):
    id: str
    admin: bool
    scopes: list[str]


class TokenRecord(msgspec.Struct, kw_only=True):
    id: str
    user: str
    name: str
    scopes: list[str]
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None


class CreatedToken(TokenRecord, kw_only=True):
    """The token itself is shown only in this answer."""

    token: str


class TokenList(msgspec.Struct, kw_only=True):
    tokens: list[TokenRecord]


class Revoked(msgspec.Struct, kw_only=True):
    id: str
    revoked: bool


class UserRecord(msgspec.Struct, kw_only=True):
    id: str
    admin: bool
    created_at: int | None = None
    disabled: bool | None = None


class CreatedUser(msgspec.Struct, kw_only=True):
    user: UserRecord
    token: str
    token_info: TokenRecord


class UserList(msgspec.Struct, kw_only=True):
    users: list[UserRecord]


class AuditRecord(msgspec.Struct, kw_only=True):
    ts: int
    actor: str
    action: str
    target: str | None
    status: int | None
    remote: str | None
    details: str | None


class AuditList(msgspec.Struct, kw_only=True):
    audit: list[AuditRecord]


class Live(msgspec.Struct, kw_only=True):
    status: Literal["ok"]


class LoopState(msgspec.Struct, kw_only=True):
    """One engine loop: seconds since its last successful iteration (None: none yet)."""

    age_s: float | None
    stale_after_s: float
    failures: int
    fresh: bool


class Ready(msgspec.Struct, kw_only=True):
    """200 when Redis answers and every engine loop is fresh; 503 with `reasons` otherwise."""

    status: Literal["ready", "unready"]
    reasons: list[str]
    redis: bool
    loops: dict[str, LoopState]
