"""Low-level, synchronous helpers over a bare git repository (dulwich).

Callers run these in a thread (`asyncio.to_thread`): dulwich blocks. Crash safety comes from
the order of writes: every object (blob, tree, commit) is written first, each through a
lock file renamed into place, and only then does a ref move, by compare-and-swap under the
ref's lock file (`refs.set_if_equals`, the same `<ref>.lock` protocol as git itself). A
process killed at any point leaves either the old ref or the new one, never a ref that names
a missing object; at worst a stale `.lock` file, which `retry_locked` removes once it is
older than `stale_lock_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dulwich.errors import NotTreeError
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.repo import Repo

logger = logging.getLogger(__name__)

T = TypeVar("T")

FILE_MODE = 0o100644
DIR_MODE = 0o040000
STALE_LOCK_S = 10.0  # a lock file older than this was left by a killed process
LOCK_WAIT_S = 30.0  # give up waiting for a busy lock after this
_SAFE = re.compile(r"[A-Za-z0-9_-]")
MAX_COMPONENT = 150  # file systems allow 255 bytes per name; leave room for `.lock`
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_INIT_LOCK = threading.Lock()


class RepoBusy(Exception):
    """A lock file stayed held (by a live writer) for longer than LOCK_WAIT_S."""


def ref_part(text: str) -> str:
    """One path component safe in a ref name and a tree path: `.`, `/`, `%`… are %-encoded.

    `diamond` → `diamond`, `my.flow` → `my%2Eflow`: never `..`, a leading `.` or `.lock`.
    """
    return "".join(c if _SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode())
                   for c in text)


def ref_component(text: str) -> str:
    """`ref_part`, kept short enough for a file name: a long one ends in a hash of `text`."""
    enc = ref_part(text)
    if len(enc) <= MAX_COMPONENT:
        return enc
    return f"{enc[:100]}--{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def is_full_sha(text: str) -> bool:
    return bool(_FULL_SHA.match(text))


def remove_stale_locks(path: Path, stale_lock_s: float = STALE_LOCK_S) -> int:
    """Remove `*.lock` files under objects/ and refs/ left by killed writers. → how many."""
    now = time.time()
    removed = 0
    for sub in ("objects", "refs"):
        for lock in (path / sub).rglob("*.lock"):
            try:
                if now - lock.stat().st_mtime > stale_lock_s:
                    lock.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    if removed:
        logger.warning("removed %d stale git lock file(s) in %s", removed, path)
    return removed


def open_repo(path: Path, stale_lock_s: float = STALE_LOCK_S) -> Repo:
    """Open the bare repository at `path`, creating it (with fsync of objects) if missing;
    remove lock files that killed writers left behind."""
    with _INIT_LOCK:  # the revision and provenance stores of one process open it lazily
        if (path / "HEAD").exists():
            remove_stale_locks(path, stale_lock_s)
        else:
            path.mkdir(parents=True, exist_ok=True)
            try:
                repo = Repo.init_bare(str(path))
            except FileExistsError:  # another process created it a moment ago
                return Repo(str(path))
            config = repo.get_config()
            config.set((b"core",), b"fsyncObjectFiles", True)  # durable before a ref names them
            config.write_to_path()
            repo.close()
    return Repo(str(path))


def retry_locked(fn: Callable[[], T], stale_lock_s: float = STALE_LOCK_S) -> T:
    """Call `fn`, waiting while one of its lock files is held; remove a stale lock file."""
    deadline = time.monotonic() + LOCK_WAIT_S
    pause_s = 0.002
    while True:
        try:
            return fn()
        except FileLocked as e:
            lock = os.fsdecode(e.lockfilename)
            try:
                age_s = time.time() - os.stat(lock).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            if age_s > stale_lock_s:
                logger.warning("removing stale git lock file %s (%.0f s old)", lock, age_s)
                try:
                    os.remove(lock)
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() > deadline:
                raise RepoBusy(f"git lock {lock} held for more than {LOCK_WAIT_S:.0f} s") from e
            time.sleep(pause_s)
            pause_s = min(0.05, pause_s * 2)


def add_objects(repo: Repo, objects: list[ShaFile], stale_lock_s: float = STALE_LOCK_S) -> None:
    """Write objects (in the given order: children before the trees and commits naming them)."""
    store = repo.object_store
    for obj in objects:
        retry_locked(lambda o=obj: store.add_object(o), stale_lock_s)  # type: ignore[misc]


def read_ref(repo: Repo, ref: bytes) -> bytes | None:
    try:
        return repo.refs[ref]
    except KeyError:
        return None


def cas_ref(
    repo: Repo, ref: bytes, old: bytes | None, new: bytes, stale_lock_s: float = STALE_LOCK_S
) -> bool:
    """Move `ref` from `old` (None: must not exist) to `new` atomically; False if it moved."""
    if old is None:
        return retry_locked(lambda: repo.refs.add_if_new(ref, new), stale_lock_s)
    return retry_locked(lambda: repo.refs.set_if_equals(ref, old, new), stale_lock_s)


def build_tree(files: Mapping[str, bytes]) -> tuple[bytes, list[ShaFile]]:
    """Trees for `{"a/b/c.json": data}`: (root tree id, objects to write, children first)."""
    nested: dict[str, object] = {}
    for path, data in files.items():
        parts = path.split("/")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})  # type: ignore[assignment]
        node[parts[-1]] = data
    objects: list[ShaFile] = []

    def make(node: dict[str, object]) -> bytes:
        tree = Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(name.encode(), DIR_MODE, make(value))
            else:
                assert isinstance(value, bytes)
                blob = Blob.from_string(value)
                objects.append(blob)
                tree.add(name.encode(), FILE_MODE, blob.id)
        objects.append(tree)
        return tree.id

    return make(nested), objects


def identity(who: str) -> bytes:
    clean = re.sub(r"[<>\n\r]", "", who) or "unknown"
    return f"{clean} <{clean}@dagbroker>".encode()


def new_commit(
    tree: bytes, parents: list[bytes], *, author: str, message: str, committer: str = ""
) -> Commit:
    commit = Commit()
    commit.tree = tree
    commit.parents = parents
    commit.author = identity(author)
    commit.committer = identity(committer or author)
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    return commit


def get_commit(repo: Repo, sha: bytes) -> Commit | None:
    try:
        obj = repo[sha]
    except KeyError:
        return None
    return obj if isinstance(obj, Commit) else None


def read_path(repo: Repo, commit: Commit, path: str) -> Blob | None:
    """The blob at `path` in the commit's tree, or None."""
    tree = repo[commit.tree]
    assert isinstance(tree, Tree)
    try:
        _mode, sha = tree.lookup_path(repo.object_store.__getitem__, path.encode())
    except (KeyError, NotTreeError):
        return None
    blob = repo[sha]
    return blob if isinstance(blob, Blob) else None


def list_dir(repo: Repo, commit: Commit, path: str) -> dict[str, bytes]:
    """Entries (name → sha) of the directory `path` in the commit's tree; {} if missing."""
    tree = repo[commit.tree]
    assert isinstance(tree, Tree)
    try:
        _mode, sha = tree.lookup_path(repo.object_store.__getitem__, path.encode())
    except (KeyError, NotTreeError):
        return {}
    sub = repo[sha]
    if not isinstance(sub, Tree):
        return {}
    return {e.path.decode(): e.sha for e in sub.items()}


class GitStore:
    """Base of the stores kept in the data dir's repository: one Repo opened lazily, and every
    (synchronous) dulwich call run in a thread, one at a time."""

    def __init__(self, path: Path, *, stale_lock_s: float = STALE_LOCK_S) -> None:
        self.path = path
        self.stale_lock_s = stale_lock_s
        self._lock = asyncio.Lock()
        self._repo: Repo | None = None

    def _open(self) -> Repo:
        if self._repo is None:
            self._repo = open_repo(self.path, self.stale_lock_s)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)
