"""Request bodies of the REST API (msgspec; unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from broker.spec import NAME_PATTERN, PRIORITY_MAX, PRIORITY_MIN

RunId = Annotated[str, Meta(pattern=r"^r[0-9a-z]{4,40}$")]


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(pattern=NAME_PATTERN)]
    revision: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{4,40}$")] | None = None
    params: dict[str, Any] = {}
    priority: Annotated[int, Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)] | None = None
    queue: bool = True  # false: create the run in state `new` (PATCH its params, then queue it)


class PatchRun(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    params: dict[str, Any] = {}
    priority: Annotated[int, Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)] | None = None


class RunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    run: RunId
    tasks: bool = True


class PublishEnvelope(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`workflow` (the document) or `url` (fetched by the broker), a commit message, and the
    revision the edit is based on (`base`; a stale base answers 409)."""

    workflow: dict[str, Any] | None = None
    message: str | None = None
    base: str | None = None
    url: str | None = None
