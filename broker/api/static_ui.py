"""The web UI: `webapp/dist` (built by scripts/build-webapp) served at `/`, with an SPA fallback.

Every UI path (`/`, `/runs/…`, `/workflows/…`, `/login`) answers the same `index.html`; the
React router picks the page and fetches its data with the user's token. Built assets live under
`/assets/` (content-hashed names, cached for a year). Without a build, `/` serves the small
built-in status page (`broker/api/static/index.html`) and other UI paths say how to build.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

import broker
from broker.api.errors import error_response

BUILTIN_PAGE = Path(__file__).parent / "static" / "index.html"
# A source checkout (or editable install) has webapp/ beside broker/; the container image
# copies the build into {prefix}/share/dagbroker/webapp.
CANDIDATES = (
    Path(broker.__file__).resolve().parent.parent / "webapp" / "dist",
    Path(sys.prefix) / "share" / "dagbroker" / "webapp",
)
UI_PREFIXES = ("/runs", "/workflows", "/login")  # pages of the React router (public shell)
ASSETS_ROUTE = ("GET", "/assets/{name}")
NO_STORE = {"Cache-Control": "no-cache"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def find_dist() -> Path | None:
    """The first built UI (a directory holding index.html), if any."""
    for path in CANDIDATES:
        if (path / "index.html").is_file():
            return path
    return None


async def index(request: web.Request) -> web.StreamResponse:
    """`/` and every UI path: the built UI's index.html, else the built-in status page."""
    dist = find_dist()
    if dist is not None:
        return web.FileResponse(dist / "index.html", headers=NO_STORE)
    if request.path == "/":
        return web.FileResponse(BUILTIN_PAGE, headers=NO_STORE)
    return error_response(404, "not_found", "the web UI is not built: run scripts/build-webapp",
                          {"path": request.path})


async def asset(request: web.Request) -> web.StreamResponse:
    """A file under `/assets/` of the build (never outside it)."""
    dist = find_dist()
    name = request.match_info["name"]
    if dist is None:
        raise web.HTTPNotFound()
    root = (dist / "assets").resolve()
    try:
        path = (root / name).resolve()
        found = path.is_relative_to(root) and path.is_file()
    except (OSError, ValueError):  # a name too long for the filesystem, or with a NUL byte
        found = False
    if not found:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=IMMUTABLE)


def ui_routes() -> list[web.RouteDef]:
    """`/assets/…`, then the SPA catch-all: every GET path outside /api, /metrics and assets.

    Register these LAST: the regex never matches /api/…, so an API path with a wrong method
    still answers 405 and an unknown API path 404."""
    return [
        web.get("/assets/{name:.+}", asset),
        web.get(r"/{tail:(?!api/|api$|metrics$|assets/).*}", index),
    ]
