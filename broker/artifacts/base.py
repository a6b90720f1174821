"""What every artifact store offers, and the rules they share.

Objects are content-addressed: the key of an object is the sha256 of its bytes, written as
64 lowercase hex digits. Nothing else is ever accepted as a key, so a key can never name a
path or an object outside the store (`../x`, `/etc/passwd`, `ab/../../cd` are all refused).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

CHUNK_BYTES = 1024 * 1024  # read/write/stream granularity
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactError(Exception):
    """An artifact cannot be stored, found or placed; the message names it."""


class ArtifactNotFound(ArtifactError):
    """No object with that sha256 is in the store."""


class InvalidKey(ArtifactError, ValueError):
    """The key is not a sha256 (64 lowercase hex digits)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    sha256: str
    size: int


def check_sha(sha256: str) -> str:
    """The key itself if it is a sha256; InvalidKey otherwise."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidKey(f"not a sha256 key: {sha256!r}")
    return sha256


def object_relpath(sha256: str) -> str:
    """`objects/ab/cdef…`: the same layout in every store (a directory, an S3 prefix)."""
    check_sha(sha256)
    return f"objects/{sha256[:2]}/{sha256[2:]}"


def hash_file(path: Path) -> ObjectInfo:
    """Blocking: sha256 and size of a file (run it in a thread)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return ObjectInfo(digest.hexdigest(), size)


class ArtifactStore(Protocol):
    """A content-addressed object store. Every method is a coroutine that never blocks the loop.

    `put_*` is idempotent (storing the same bytes twice keeps one object) and atomic: an
    object is visible under its key only once complete. `get_file` verifies the bytes it
    writes against the key and places the file atomically.
    """

    url: str  # where it is, for logs (`file:///…`, `s3://bucket/prefix`)

    async def put_file(self, path: Path) -> ObjectInfo: ...

    async def put_bytes(self, data: bytes) -> ObjectInfo: ...

    async def get_file(self, sha256: str, dest: Path) -> int:
        """Write the object to dest (replacing it); → its size. ArtifactNotFound if absent."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int | None:
        """The object's size in bytes, or None if it is not stored."""
        ...

    def iter_bytes(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """Stream an object's bytes (for a download route); ArtifactNotFound before the first."""
        ...

    def iter_keys(self) -> AsyncIterator[str]:
        """Every stored sha256, in no particular order."""
        ...

    async def aclose(self) -> None:
        """Release connections (the owner calls it at shutdown; a later use reopens them)."""
        ...
