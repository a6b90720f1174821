"""First start: create the admin and write its token to a 0600 file (no default secret anywhere)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from broker.auth.store import AuthStore
from broker.errors import Conflict

logger = logging.getLogger(__name__)

ADMIN_ID = "admin"


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / "admin.token"


async def ensure_admin(store: AuthStore, data_dir: Path) -> str | None:
    """Create the admin user and token if no user exists. Returns the new token (else None)."""
    if await store.user_count() > 0:
        return None
    try:
        await store.create_user(ADMIN_ID, admin=True, created_by=None)
    except Conflict:  # another broker sharing this data dir created it first
        return None
    token, _ = await store.create_token(ADMIN_ID, name="bootstrap", scopes=["admin", "user"])
    path = admin_token_path(data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    logger.warning("created the admin user; its token is in %s (mode 0600)", path)
    return token
