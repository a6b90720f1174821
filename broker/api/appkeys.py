"""Typed application keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", "Settings")
REDIS = web.AppKey("redis", "Redis")
ENGINE = web.AppKey("engine", "Engine")
REVISIONS = web.AppKey("revisions", "RevisionStore")
EMBEDDED = web.AppKey("embedded", "EmbeddedRedis | None")
POLICY = web.AppKey("policy", "Policy")
NODEWORKS_PLUGINS = web.AppKey("nodeworks_plugins", dict)
