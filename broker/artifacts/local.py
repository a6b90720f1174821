"""A content-addressed directory: `{root}/objects/ab/cdef…`, one read-only file per object.

Writes go to a temporary file in `{root}/tmp` (same filesystem), are fsynced, then renamed
into place, so a reader never sees half an object and a crash leaves only a stray temp file.
Every path is built from a checked sha256 and must resolve inside the root: a symlinked
`objects/ab` pointing elsewhere is refused, not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from broker.artifacts.base import (
    CHUNK_BYTES,
    ArtifactError,
    ArtifactNotFound,
    ObjectInfo,
    check_sha,
    object_relpath,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

OBJECT_MODE = 0o444


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> ObjectInfo:
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK_BYTES):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    dst.flush()
    os.fsync(dst.fileno())
    return ObjectInfo(digest.hexdigest(), size)


@contextlib.contextmanager
def _temp_file(directory: Path, prefix: str) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file in `directory`, removed on error unless the caller renamed it away."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


class LocalStore:
    """An ArtifactStore in a local (or shared, e.g. NFS) directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    # -- paths ---------------------------------------------------------------------------
    def object_path(self, sha256: str) -> Path:
        """Where an object lives; InvalidKey for a non-sha, ArtifactError if it would escape."""
        path = self.root / object_relpath(sha256)
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise ArtifactError(f"object {sha256} resolves outside the store {self.root}")
        return path

    # -- blocking halves (run in threads) ------------------------------------------------
    def _store(self, src: IO[bytes]) -> ObjectInfo:
        with _temp_file(self.root / "tmp", "put-") as (f, tmp):
            info = _copy_hashing(src, f)
        try:
            final = self.object_path(info.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, OBJECT_MODE)
            os.replace(tmp, final)  # same bytes if it existed: replacing is harmless
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def _put_file(self, path: Path) -> ObjectInfo:
        with path.open("rb") as src:
            return self._store(src)

    def _put_bytes(self, data: bytes) -> ObjectInfo:
        return self._store(io.BytesIO(data))

    def _open(self, sha256: str) -> IO[bytes]:
        try:
            return self.object_path(sha256).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"no object {sha256} in {self.url}") from None

    def _get_file(self, sha256: str, dest: Path) -> int:
        with self._open(sha256) as src, _temp_file(dest.parent, f".{dest.name}.") as (f, tmp):
            info = _copy_hashing(src, f)
            if info.sha256 != sha256:
                raise ArtifactError(f"object {sha256} is corrupt (its bytes hash to {info.sha256})")
        os.replace(tmp, dest)
        return info.size

    def _size(self, sha256: str) -> int | None:
        try:
            return self.object_path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def _keys_under(self, sub: Path) -> list[str]:
        try:
            names = os.listdir(sub)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keys = [sub.name + n for n in names]
        return [k for k in keys if len(k) == 64 and all(c in "0123456789abcdef" for c in k)]

    def _subdirs(self) -> list[Path]:
        objects = self.root / "objects"
        try:
            return sorted(objects / n for n in os.listdir(objects) if len(n) == 2)
        except FileNotFoundError:
            return []

    # -- ArtifactStore -------------------------------------------------------------------
    async def put_file(self, path: Path) -> ObjectInfo:
        return await asyncio.to_thread(self._put_file, Path(path))

    async def put_bytes(self, data: bytes) -> ObjectInfo:
        return await asyncio.to_thread(self._put_bytes, data)

    async def get_file(self, sha256: str, dest: Path) -> int:
        check_sha(sha256)
        return await asyncio.to_thread(self._get_file, sha256, Path(dest))

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def size(self, sha256: str) -> int | None:
        check_sha(sha256)
        return await asyncio.to_thread(self._size, sha256)

    async def iter_bytes(
        self, sha256: str, chunk_bytes: int = CHUNK_BYTES
    ) -> AsyncIterator[bytes]:
        check_sha(sha256)
        f = await asyncio.to_thread(self._open, sha256)
        try:
            while chunk := await asyncio.to_thread(f.read, chunk_bytes):
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    async def iter_keys(self) -> AsyncIterator[str]:
        for sub in await asyncio.to_thread(self._subdirs):
            for key in await asyncio.to_thread(self._keys_under, sub):
                yield key

    async def aclose(self) -> None:
        return None
