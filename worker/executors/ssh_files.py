"""SFTP transfers of the ssh executor: stage a task's files in, fetch its results out.

Inputs (`spec.inputs`, names relative to the task's local workdir, where the artifact layer
stages them) go to the attempt's remote directory; outputs (`spec.outputs`, names or globs
relative to the remote directory) come back into the local workdir. Directories are copied
recursively. Names are kept inside their directory: no absolute paths, no '..'.
"""

from __future__ import annotations

import asyncio
import posixpath
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import asyncssh

if TYPE_CHECKING:
    from collections.abc import Sequence


class TransferError(Exception):
    """A staged input is missing, a name escapes its directory, or SFTP failed."""


def _relative(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise TransferError(f"{name!r} must be a relative path inside the task's directory")
    return str(p)


async def upload_inputs(
    sftp: asyncssh.SFTPClient, local_dir: Path, remote: str, names: Sequence[str]
) -> None:
    for name in names:
        rel = _relative(name)
        src = local_dir / rel
        if not await asyncio.to_thread(src.exists):
            raise TransferError(f"input {name!r} is not in the local workdir {local_dir}")
        dst = posixpath.join(remote, rel)
        parent = posixpath.dirname(dst)
        if parent and parent != remote:
            await sftp.makedirs(parent, exist_ok=True)
        try:
            await sftp.put(str(src), dst, recurse=True, preserve=True)
        except (asyncssh.SFTPError, OSError) as e:
            raise TransferError(f"cannot upload input {name!r}: {e}") from e


async def fetch_outputs(
    sftp: asyncssh.SFTPClient, remote: str, patterns: Sequence[str], local_dir: Path
) -> list[str]:
    """Fetch each match into local_dir (same relative path). → the names fetched."""
    fetched: list[str] = []
    for pattern in patterns:
        rel = _relative(pattern)
        try:
            matches = await sftp.glob(posixpath.join(remote, rel))
        except asyncssh.SFTPNoSuchFile:
            matches = []
        except (asyncssh.SFTPError, OSError) as e:
            raise TransferError(f"cannot list outputs {pattern!r}: {e}") from e
        if not matches:
            raise TransferError(f"output {pattern!r} was not produced")
        for match in matches:
            path = match.decode() if isinstance(match, bytes) else match
            name = posixpath.relpath(path, remote)
            dst = local_dir / name
            await asyncio.to_thread(dst.parent.mkdir, parents=True, exist_ok=True)
            try:
                await sftp.get(path, str(dst), recurse=True, preserve=True)
            except (asyncssh.SFTPError, OSError) as e:
                raise TransferError(f"cannot fetch output {name!r}: {e}") from e
            fetched.append(name)
    return fetched


async def read_small(sftp: asyncssh.SFTPClient, path: str, limit: int) -> bytes | None:
    """A remote file's content (at most limit + 1 bytes); None if it does not exist."""
    try:
        async with sftp.open(path, "rb") as f:
            data = await f.read(limit + 1)
    except asyncssh.SFTPNoSuchFile:
        return None
    return data if isinstance(data, bytes) else data.encode()


async def write_file(sftp: asyncssh.SFTPClient, path: str, data: bytes) -> None:
    async with sftp.open(path, "wb") as f:
        await f.write(data)
