"""Workflow revisions in a bare git repository (dulwich), one commit per publish.

Layout of the tree on `refs/heads/main`: `workflows/<name>.json`. Dulwich is synchronous,
so every call runs in a thread, serialised by one lock; the branch moves with a
compare-and-swap, so a commit is either fully visible or not at all.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from broker.errors import NotFound

BRANCH = b"refs/heads/main"
FILE_MODE = 0o100644
DIR_MODE = 0o040000
_HEX = re.compile(r"^[0-9a-f]{4,40}$")


class RevisionStore:
    """save(name, text) → commit sha; load(name, revision) → text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._repo: Repo | None = None

    def _open(self) -> Repo:
        if self._repo is None:
            if (self.path / "HEAD").exists():
                self._repo = Repo(str(self.path))
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._repo = Repo.init_bare(str(self.path))
                self._repo.refs.set_symbolic_ref(b"HEAD", BRANCH)
        return self._repo

    async def save(self, name: str, text: str, *, author: str, message: str) -> tuple[str, bool]:
        """Commit `text` as the workflow `name`. Returns (sha, changed)."""
        async with self._lock:
            return await asyncio.to_thread(self._save, name, text, author, message)

    async def load(self, name: str, revision: str | None = None) -> tuple[str, str]:
        """(text, full sha) of `name` at `revision` (default: latest)."""
        async with self._lock:
            return await asyncio.to_thread(self._load, name, revision)

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    # -- sync parts, run in a thread ------------------------------------
    def _head(self, repo: Repo) -> bytes | None:
        try:
            return repo.refs[BRANCH]
        except KeyError:
            return None

    def _save(self, name: str, text: str, author: str, message: str) -> tuple[str, bool]:
        repo = self._open()
        store = repo.object_store
        head = self._head(repo)
        root = store[store[head].tree] if head else Tree()  # type: ignore[attr-defined]
        assert isinstance(root, Tree)
        wf_tree = Tree()
        if b"workflows" in root:
            sub = store[root[b"workflows"][1]]
            assert isinstance(sub, Tree)
            wf_tree = sub
        blob = Blob.from_string(text.encode())
        fname = f"{name}.json".encode()
        if fname in wf_tree and wf_tree[fname][1] == blob.id and head is not None:
            return head.decode(), False
        store.add_object(blob)
        wf_tree.add(fname, FILE_MODE, blob.id)
        store.add_object(wf_tree)
        new_root = Tree()
        for entry in root.items():
            new_root.add(entry.path, entry.mode, entry.sha)
        new_root.add(b"workflows", DIR_MODE, wf_tree.id)
        store.add_object(new_root)
        commit = Commit()
        commit.tree = new_root.id
        commit.parents = [head] if head else []
        ident = f"{author} <{author}@dagbroker>".encode()
        commit.author = commit.committer = ident
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        store.add_object(commit)
        if not repo.refs.set_if_equals(BRANCH, head, commit.id):
            raise RuntimeError("the workflow branch moved during a commit; retry")
        return commit.id.decode(), True

    def _resolve(self, repo: Repo, revision: str | None) -> bytes:
        head = self._head(repo)
        if head is None:
            raise NotFound("no workflow has been published yet")
        if not revision:
            return head
        rev = revision.lower()
        if not _HEX.match(rev):
            raise NotFound(f"revision '{revision}' is not a commit sha", {"revision": revision})
        for entry in repo.get_walker(include=[head]):
            sha = entry.commit.id
            if sha.decode().startswith(rev):
                return sha
        raise NotFound(f"no revision '{revision}'", {"revision": revision})

    def _load(self, name: str, revision: str | None) -> tuple[str, str]:
        repo = self._open()
        sha = self._resolve(repo, revision)
        commit = repo[sha]
        assert isinstance(commit, Commit)
        tree = repo[commit.tree]
        assert isinstance(tree, Tree)
        try:
            _mode, blob_sha = tree.lookup_path(
                repo.object_store.__getitem__, f"workflows/{name}.json".encode()
            )
        except KeyError as e:
            where = f" at revision {sha.decode()[:12]}" if revision else ""
            raise NotFound(f"no workflow '{name}'{where}", {"name": name}) from e
        blob = repo[blob_sha]
        assert isinstance(blob, Blob)
        return blob.data.decode(), sha.decode()

    def list_names(self) -> list[str]:
        repo = self._open()
        head = self._head(repo)
        if head is None:
            return []
        root = repo[repo[head].tree]  # type: ignore[attr-defined]
        if not isinstance(root, Tree) or b"workflows" not in root:
            return []
        sub = repo[root[b"workflows"][1]]
        assert isinstance(sub, Tree)
        return sorted(e.path.decode()[: -len(".json")] for e in sub.items())

    async def names(self) -> list[str]:
        async with self._lock:
            return await asyncio.to_thread(self.list_names)
