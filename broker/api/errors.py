"""One middleware maps every error to `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.errors import BrokerError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, details: dict | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as e:
        return error_response(e.status, e.code, e.message, e.details)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size
        return error_response(
            413,
            "payload_too_large",
            f"request body too large (limit {limit} bytes)",
            {"limit": limit},
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        return error_response(e.status, code, e.reason or code, {"path": request.path})
    except UnicodeEncodeError as e:
        if e.reason != "surrogates not allowed":
            return _internal(request)
        # JSON/YAML escapes like "\ud800" decode to lone surrogates, which msgspec and
        # UTF-8 refuse wherever the text goes next: the request is bad, not the broker.
        return error_response(
            400,
            "bad_request",
            "invalid Unicode in the request: a lone surrogate escape such as \\ud800",
            {"reason": e.reason},
        )
    except Exception:
        return _internal(request)


def _internal(request: web.Request) -> web.Response:
    """An unexpected failure: logged with its traceback (we are inside `except`), never sent."""
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal", "internal error; see the broker log")
