"""Domain errors. Raised in the engine and core; mapped to HTTP in one middleware."""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    """Root of every error the broker reports to a client."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(BrokerError):
    """The request itself is malformed (bad JSON, missing argument)."""

    status = 400
    code = "bad_request"


class InvalidWorkflow(BrokerError):
    """A workflow spec failed validation; details name the node and field."""

    status = 422
    code = "invalid_workflow"


class NotFound(BrokerError):
    """The named workflow, revision or run does not exist (or is not yours)."""

    status = 404
    code = "not_found"


class Conflict(BrokerError):
    """The request conflicts with the current state (e.g. a finished run)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(BrokerError):
    """The request body exceeds the configured limit."""

    status = 413
    code = "payload_too_large"


class RedisUnsafe(BrokerError):
    """The Redis server is configured in a way that could lose broker state."""

    code = "redis_unsafe"
