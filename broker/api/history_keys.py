"""App key for the SQLite connection (kept apart so middlewares can import it cheaply)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiosqlite

    from broker.history.archive import Archiver

DB: web.AppKey[aiosqlite.Connection] = web.AppKey("db", "aiosqlite.Connection")  # type: ignore[arg-type]
ARCHIVER: web.AppKey[Archiver] = web.AppKey("archiver", "Archiver")  # type: ignore[arg-type]
