"""Who is calling: `request_user(request)` is the one way handlers learn the caller.

Until users and tokens exist every request runs as the local user `local` (an admin); the
authentication middleware replaces this by setting `request["user"]`.
"""

from __future__ import annotations

import msgspec
from aiohttp import web


class User(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller."""

    id: str
    admin: bool = False
    scopes: frozenset[str] = frozenset()


LOCAL_USER = User(id="local", admin=True, scopes=frozenset({"user", "admin"}))


def request_user(request: web.Request) -> User:
    user = request.get("user")
    return user if isinstance(user, User) else LOCAL_USER
