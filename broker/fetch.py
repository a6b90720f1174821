"""Fetching a workflow document by URL (publish with `{"url": ...}`), conditionally.

The caller passes the validators remembered from the last fetch of the same URL (`ETag`,
`Last-Modified`); a `304 Not Modified` answer then carries no body. The body is read up to
`max_bytes` (the broker's request-body limit). Errors name the URL:

* not an http(s) URL → 400 `bad_request`
* no answer, a timeout, or an HTTP error status → 502 `fetch_failed` (details: url, status)
* a body over the limit → 413 `payload_too_large`
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import aiohttp
import msgspec

from broker import __version__
from broker.errors import BadRequest, BrokerError, PayloadTooLarge

logger = logging.getLogger(__name__)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
CHUNK = 64 * 1024


class FetchFailed(BrokerError):
    """The workflow's URL could not be fetched (no answer, a timeout, or an error status)."""

    status = 502
    code = "fetch_failed"


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """What the server answered: 200 with a body, or 304 (unchanged, no body)."""

    url: str
    status: int
    body: bytes = b""
    format: str = "json"  # json | yaml
    etag: str | None = None
    last_modified: str | None = None


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"cannot fetch {url!r}: give an http:// or https:// URL",
                         {"field": "url", "url": url})
    return url


def _format(url: str, content_type: str) -> str:
    path = urlsplit(url).path.lower()
    if content_type in YAML_TYPES or path.endswith((".yaml", ".yml")):
        return "yaml"
    return "json"


async def _read_limited(resp: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
    too_large = PayloadTooLarge(
        f"the document at {url} is larger than the limit of {max_bytes} bytes",
        {"url": url, "limit": max_bytes},
    )
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def fetch_document(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int,
    timeout_s: float,
) -> Fetched:
    """GET `url` (conditional when validators are given) → Fetched, or raise naming the URL."""
    check_url(url)
    headers = {"Accept": "application/json, application/yaml;q=0.9, */*;q=0.1",
               "User-Agent": f"dagbroker/{__version__}"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(
            url, headers=headers
        ) as resp:
            if resp.status == 304:
                return Fetched(url=url, status=304, etag=etag, last_modified=last_modified)
            if resp.status != 200:
                raise FetchFailed(
                    f"fetching {url} failed: HTTP {resp.status} {resp.reason or ''}".strip(),
                    {"url": url, "status": resp.status},
                )
            body = await _read_limited(resp, url, max_bytes)
            return Fetched(
                url=url,
                status=200,
                body=body,
                format=_format(url, resp.content_type),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
            )
    except TimeoutError as e:
        raise FetchFailed(f"fetching {url} failed: no answer within {timeout_s:g} s",
                          {"url": url, "status": None, "reason": "timeout"}) from e
    except aiohttp.ClientError as e:
        raise FetchFailed(f"fetching {url} failed: {e}",
                          {"url": url, "status": None, "reason": str(e)}) from e
