"""Users and tokens in SQLite."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import msgspec

from broker.auth.tokens import SCOPE, new_token, parse_token, secret_matches
from broker.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    import aiosqlite

logger = logging.getLogger(__name__)

USER_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def now_ms() -> int:
    return int(time.time() * 1000)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who a valid token belongs to, and what it may do."""

    user: str
    admin: bool
    scopes: frozenset[str]
    token_id: str


class TokenInfo(msgspec.Struct, kw_only=True):
    id: str
    user: str
    name: str
    scopes: list[str]
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None


class AuthFailure(Exception):
    """Why a presented token was refused (malformed, unknown, expired, revoked, disabled)."""


class AuthStore:
    """CRUD for users and tokens; `authenticate` is the hot path (one indexed lookup)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def user_count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM users") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def create_user(
        self, user_id: str, *, admin: bool, created_by: str | None
    ) -> dict[str, Any]:
        if not USER_ID.match(user_id):
            raise BadRequest(
                f"invalid user id {user_id!r}: use 1-64 of a-z, 0-9, '_', '.', '-'",
                {"field": "id"},
            )
        try:
            await self.db.execute(
                "INSERT INTO users (id, admin, created_at, created_by) VALUES (?, ?, ?, ?)",
                (user_id, int(admin), now_ms(), created_by),
            )
            await self.db.commit()
        except Exception as e:
            if "UNIQUE" in str(e):
                raise Conflict(f"user '{user_id}' already exists", {"id": user_id}) from e
            raise
        return {"id": user_id, "admin": admin}

    async def get_user(self, user_id: str) -> dict[str, Any] | None:
        async with self.db.execute(
            "SELECT id, admin, created_at, disabled FROM users WHERE id = ?", (user_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return {
            "id": row["id"],
            "admin": bool(row["admin"]),
            "created_at": row["created_at"],
            "disabled": bool(row["disabled"]),
        }

    async def list_users(self) -> list[dict[str, Any]]:
        async with self.db.execute(
            "SELECT id, admin, created_at, disabled FROM users ORDER BY id"
        ) as cur:
            rows = await cur.fetchall()
        return [
            {
                "id": r["id"],
                "admin": bool(r["admin"]),
                "created_at": r["created_at"],
                "disabled": bool(r["disabled"]),
            }
            for r in rows
        ]

    async def create_token(
        self, user_id: str, *, name: str, scopes: list[str], expires_in_s: float | None = None
    ) -> tuple[str, TokenInfo]:
        """Returns (the token, shown once; its record)."""
        bad = [s for s in scopes if not SCOPE.match(s)]
        if bad or not scopes:
            raise BadRequest(
                f"invalid scope {bad[0]!r}" if bad else "a token needs at least one scope",
                {"field": "scopes",
                 "allowed": ["user", "admin", "runner", "metrics", "events:<key>"]},
            )
        user = await self.get_user(user_id)
        if user is None:
            raise NotFound(f"no user '{user_id}'", {"user": user_id})
        if "admin" in scopes and not user["admin"]:
            raise BadRequest("only an admin user can hold the admin scope", {"field": "scopes"})
        token, token_id, digest = new_token()
        created = now_ms()
        expires = created + int(expires_in_s * 1000) if expires_in_s else None
        await self.db.execute(
            "INSERT INTO tokens (id, user_id, name, secret_sha256, scopes, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, user_id, name, digest, json.dumps(sorted(set(scopes))), created, expires),
        )
        await self.db.commit()
        info = TokenInfo(
            id=token_id,
            user=user_id,
            name=name,
            scopes=sorted(set(scopes)),
            created_at=created,
            expires_at=expires,
        )
        return token, info

    async def list_tokens(self, user_id: str) -> list[TokenInfo]:
        async with self.db.execute(
            "SELECT id, user_id, name, scopes, created_at, expires_at, revoked_at, last_used_at"
            " FROM tokens WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            TokenInfo(
                id=r["id"],
                user=r["user_id"],
                name=r["name"],
                scopes=json.loads(r["scopes"]),
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                revoked_at=r["revoked_at"],
                last_used_at=r["last_used_at"],
            )
            for r in rows
        ]

    async def revoke_token(self, token_id: str, *, user_id: str | None) -> None:
        """Revoke a token; `user_id` restricts it to that user's tokens (None: any, for admins)."""
        sql = "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
        args: tuple[Any, ...] = (now_ms(), token_id)
        if user_id is not None:
            sql += " AND user_id = ?"
            args += (user_id,)
        cur = await self.db.execute(sql, args)
        await self.db.commit()
        if cur.rowcount == 0:
            raise NotFound(f"no active token '{token_id}'", {"token": token_id})

    async def authenticate(self, token: str) -> Principal:
        parsed = parse_token(token)
        if parsed is None:
            raise AuthFailure("malformed token")
        token_id, secret = parsed
        async with self.db.execute(
            "SELECT t.secret_sha256, t.scopes, t.expires_at, t.revoked_at, t.user_id,"
            " u.admin, u.disabled FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?",
            (token_id,),
        ) as cur:
            row = await cur.fetchone()
        # Compare even when the row is missing, so timing says nothing about which ids exist.
        stored = row["secret_sha256"] if row else "0" * 64
        ok = secret_matches(secret, stored)
        if row is None or not ok:
            raise AuthFailure("unknown token")
        if row["revoked_at"] is not None:
            raise AuthFailure("token revoked")
        if row["expires_at"] is not None and row["expires_at"] <= now_ms():
            raise AuthFailure("token expired")
        if row["disabled"]:
            raise AuthFailure("user disabled")
        return Principal(
            user=row["user_id"],
            admin=bool(row["admin"]),
            scopes=frozenset(json.loads(row["scopes"])),
            token_id=token_id,
        )

    async def touch(self, token_id: str) -> None:
        await self.db.execute(
            "UPDATE tokens SET last_used_at = ? WHERE id = ?", (now_ms(), token_id)
        )
        await self.db.commit()
