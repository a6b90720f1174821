"""Token format and hashing (pure).

A token reads `dgb_<id>_<secret>`: `id` (12 hex chars) finds the row, `secret` (43 url-safe
chars, 256 bits) is checked against its stored sha256 with `hmac.compare_digest`. Only the
hash is stored; the full token is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "dgb"
_TOKEN = re.compile(r"^dgb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SCOPE = re.compile(r"^(user|admin|runner|metrics|events:[A-Za-z0-9_.:\-]{1,200})$")


def new_token() -> tuple[str, str, str]:
    """(token, id, secret_sha256)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}_{token_id}_{secret}", token_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    m = _TOKEN.match(token.strip())
    return (m.group(1), m.group(2)) if m else None


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)
