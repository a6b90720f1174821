"""`store_from_url`: the one place a store is chosen from its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from broker.artifacts.local import LocalStore

if TYPE_CHECKING:
    from broker.artifacts.base import ArtifactStore


def store_from_url(url: str, **opts: Any) -> ArtifactStore:
    """`file:///abs/dir` or a plain path → LocalStore; `s3://bucket/prefix` → S3Store.

    opts go to the S3 store (`endpoint_url`, `region`, `client_options`, part sizes) and are
    ignored by a local one. ValueError for anything else.
    """
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ValueError(f"artifact store {url!r}: only local file:// URLs are supported")
        path = unquote(parts.path) if parts.scheme else url
        if not path:
            raise ValueError("artifact store: empty path")
        return LocalStore(Path(path).expanduser())
    if parts.scheme == "s3":
        from broker.artifacts.s3 import S3Store

        if not parts.netloc:
            raise ValueError(f"artifact store {url!r}: no bucket (s3://bucket/prefix)")
        return S3Store(parts.netloc, unquote(parts.path), **opts)
    raise ValueError(f"artifact store {url!r}: use file:///path or s3://bucket/prefix")
