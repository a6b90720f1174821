"""Opening the SQLite database: WAL mode (brokers may share a data dir), schema applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite


@asynccontextmanager
async def open_db(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """An aiosqlite connection (its own thread; nothing blocks the loop) with the schema applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(str(path), timeout=30)
    try:
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=30000")
        schema = (resources.files("broker.history") / "schema.sql").read_text()
        await db.executescript(schema)
        await db.commit()
        yield db
    finally:
        await db.close()
