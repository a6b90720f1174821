"""OpenAPI metadata for handlers that do not carry `@api_doc` themselves.

A handler missing here (renamed, or new) still appears in the document with a generic
description; a handler that describes itself with `@api_doc` wins over this table.
Query Structs below mirror the arguments those handlers read by hand.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from broker.api import responses as r
from broker.api.apidoc import HTML, JSON, YAML, describe
from broker.api.models import RunId
from broker.spec import Workflow

_done = False


class PublishQuery(msgspec.Struct, kw_only=True):
    message: str | None = None  # commit message (the body's `message` wins)


class RunsQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    owner: str | None = None  # admins: one owner's runs


class RunQuery(msgspec.Struct, kw_only=True):
    tasks: bool = True  # false: the run without its tasks


class OwnerQuery(msgspec.Struct, kw_only=True):
    owner: str | None = None


class TokensQuery(msgspec.Struct, kw_only=True):
    user: str | None = None  # admins: another user's tokens


class AuditQuery(msgspec.Struct, kw_only=True):
    run: RunId | None = None
    actor: str | None = None  # admins only
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class DeleteRunQuery(msgspec.Struct, kw_only=True):
    force: bool = False


class RedoNode(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node: Annotated[str, Meta(min_length=1, max_length=300)]


def _d(module: str, handler: str, **fields: Any) -> None:
    """Describe `module.handler` when it exists (the table never breaks the app)."""
    try:
        mod = importlib.import_module(f"broker.api.{module}")
    except ImportError:
        return
    fn = getattr(mod, handler, None)
    if fn is not None:
        describe(fn, **fields)


def _typ(module: str, name: str) -> Any:
    mod = importlib.import_module(f"broker.api.{module}")
    return getattr(mod, name, None)


def _describe_runs() -> None:
    from broker.api.models import ExecuteRequest, PatchRun, RunRequest

    _d("workflows", "execute", body=ExecuteRequest, responses={201: r.ExecuteResponse})
    _d("workflows", "status", summary="A run and its tasks", args=RunRequest,
       responses={200: r.RunStatus})
    _d("workflows", "cancel", summary="Cancel a run", args=RunRequest,
       responses={200: r.CancelResponse})
    _d("workflows", "run_by_id", summary="A run and its tasks", query=RunQuery,
       responses={200: r.RunStatus})
    _d("workflows", "cancel_by_id", summary="Cancel a run", responses={200: r.CancelResponse})
    _d("workflows", "list_runs", summary="Runs, newest first (yours; admins: all)",
       query=RunsQuery, responses={200: r.RunList})
    _d("lifecycle_api", "patch_run", body=PatchRun, responses={200: r.RunStatus})
    _d("lifecycle_api", "queue_run", responses={200: r.RunStatus})
    _d("lifecycle_api", "delete_run", summary="Delete a finished run", query=DeleteRunQuery)
    _d("lifecycle_api", "messages", summary="A run's notices")
    _d("redo", "redo_by_id", summary="Redo a finished run from a node", body=RedoNode)
    _d("redo", "redo", summary="Redo a finished run from a node",
       body=_typ("redo", "RedoRequest"))


def _describe_workflows() -> None:
    from broker.api.models import PublishEnvelope

    _d("revisions_api", "publish", body=(Workflow, PublishEnvelope), body_types=(JSON, YAML),
       query=PublishQuery, responses={201: r.PublishResponse})
    _d("revisions_api", "get_workflow", summary="A workflow at a revision (default: latest)",
       query=_typ("revisions_api", "WorkflowArgs"), responses={200: r.WorkflowDocument})
    _d("revisions_api", "list_workflows", summary="Workflow names (yours; admins: an owner's)",
       query=OwnerQuery, responses={200: r.WorkflowList})
    _d("revisions_api", "history", summary="Revisions of a workflow, newest first",
       query=_typ("revisions_api", "HistoryArgs"))
    _d("revisions_api", "diff", summary="What changed between two revisions",
       query=_typ("revisions_api", "DiffArgs"))
    _d("revisions_api", "delete", summary="Delete a workflow (a commit; history is kept)",
       args=_typ("revisions_api", "DeleteArgs"))


def _describe_system() -> None:
    _d("system", "status", summary="Broker status (public minimum without a token)",
       responses={200: r.StatusResponse})
    _d("system", "index", summary="The web UI", responses={200: None}, content=HTML)
    _d("operations", "queue_status", summary="Ready, dispatched and pending tasks per class")
    _d("operations", "queue_clear", body=_typ("operations", "ClearQueue"))
    _d("operations", "runners_status", summary="Live runners and their capabilities")
    _d("operations", "runners_register", body=_typ("operations", "RegisterRunner"))
    _d("operations", "runners_cancel", body=_typ("operations", "RunnerOrder"))
    _d("operations", "runners_shutdown", body=_typ("operations", "RunnerOrder"))
    _d("operations", "admin_cancel_all", summary="Admin: cancel every active run")


def _describe_users() -> None:
    from broker.api.users import CreateToken, CreateUser

    _d("users", "create_user", body=CreateUser, responses={201: r.CreatedUser})
    _d("users", "list_users", summary="Admin: every user", responses={200: r.UserList})
    _d("users", "whoami", summary="The caller", responses={200: r.Whoami})
    _d("users", "create_token", body=CreateToken, responses={201: r.CreatedToken})
    _d("users", "list_tokens", summary="Your tokens (admins: a user's)", query=TokensQuery,
       responses={200: r.TokenList})
    _d("users", "revoke_token", summary="Revoke a token", responses={200: r.Revoked})
    _d("audit", "list_audit", summary="The audit trail (admins: all; users: their own)",
       query=AuditQuery, responses={200: r.AuditList})


def register() -> None:
    """Fill the registry once (called when the document is first built)."""
    global _done
    if _done:
        return
    _done = True
    for part in (_describe_runs, _describe_workflows, _describe_system, _describe_users):
        try:
            part()
        except (ImportError, AttributeError, TypeError):  # a module in flux: stay generic
            continue
