"""Workflow revisions in a bare git repository (dulwich): one commit per publish or delete.

Each workflow of each owner is its own branch, `refs/heads/workflows/<owner>/<name>`, whose
commits hold `workflows/<owner>/<name>.json` (plus extra files such as the original Nodeworks
chart `<name>.nc`). A delete is a commit whose tree holds only a tombstone,
`workflows/<owner>/<name>.deleted`. A revision of a workflow is a commit of its branch.

Concurrency: one asyncio lock per store serialises this process's calls; across processes
each branch moves by compare-and-swap under git's `<ref>.lock` file (see broker.gitrepo), so
of two edits from the same base exactly one wins, and edits without a base never lose one
another (the loser re-reads the branch and commits on top). Dulwich blocks: every call runs in
a thread. The remembered state of fetched URLs (ETag, Last-Modified) lives under
`refs/dagbroker/fetch/<owner>/<sha256 of url>` as a small JSON blob.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from broker import gitrepo
from broker.core.wfdiff import WorkflowDiff, diff_counts, diff_workflows, summary
from broker.errors import BadRequest, Conflict, NotFound
from broker.spec import NAME_PATTERN

WF_REFS = "refs/heads/workflows"
FETCH_REFS = "refs/dagbroker/fetch"
MIN_SHA = 7
_EXT = re.compile(r"^[a-z0-9]{1,16}$")
_REV = re.compile(r"^[0-9a-f]{1,40}$")


class Saved(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a save: the workflow's latest revision, and whether this save made it."""

    name: str
    owner: str
    revision: str
    changed: bool
    message: str = ""
    diff: WorkflowDiff | None = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    revision: str
    author: str
    committed_at: int  # ms
    message: str
    deleted: bool
    added: list[str]
    removed: list[str]
    changed: list[str]


class History(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    owner: str
    revisions: list[HistoryEntry]
    next: str | None  # pass as `cursor` for the next (older) page


class Listed(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    revision: str
    updated_at: int  # ms


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise BadRequest(f"invalid workflow name {name!r}", {"field": "name"})


def _missing(name: str) -> NotFound:
    """The one answer for a workflow that does not exist or is not the caller's."""
    return NotFound(f"no workflow '{name}'", {"name": name})


class _Wf:
    """Where one workflow of one owner lives in the repository."""

    def __init__(self, owner: str, name: str) -> None:
        _check_name(name)
        if not owner:
            raise BadRequest("a workflow needs an owner", {"field": "owner"})
        self.owner = owner
        self.name = name
        self.dir = f"workflows/{gitrepo.ref_component(owner)}"
        self.ref = f"{WF_REFS}/{gitrepo.ref_component(owner)}/{gitrepo.ref_component(name)}"\
            .encode()

    def path(self, ext: str = "json") -> str:
        return f"{self.dir}/{self.name}.{ext}"


class RevisionStore(gitrepo.GitStore):
    """save / load / history / diff / delete / names of workflows, per owner."""

    # -- async API ----------------------------------------------------------------------------
    async def save(
        self,
        name: str,
        text: str,
        *,
        owner: str,
        author: str,
        message: str | None = None,
        base: str | None = None,
        extra_files: dict[str, bytes] | None = None,
        source: str | None = None,
    ) -> Saved:
        """Commit `text` as `workflows/<owner>/<name>.json` (+ `<name>.<ext>` per extra file).

        Unchanged content → the current revision, no commit. `base` given and not the
        workflow's latest revision → Conflict (409) with the current sha and the diff from
        `base` to it; nothing is written. `message` defaults to a summary of the change;
        `source` (where the document came from, e.g. its URL) is added as a trailer.
        """
        wf = _Wf(owner, name)
        for ext in extra_files or {}:
            if not _EXT.match(ext) or ext in ("json", "deleted"):
                raise BadRequest(f"invalid extra file extension {ext!r}", {"field": "extra_files"})
        return await self._call(
            self._save, wf, text, author, message, base, dict(extra_files or {}), source
        )

    async def load(
        self, name: str, revision: str | None = None, *, owner: str | None = None
    ) -> tuple[str, str]:
        """(text, full sha) of the owner's workflow at `revision` (default: its latest).

        Without `owner`, `revision` must be a full sha (as recorded by a run): the commit
        itself names the one owner whose workflow it holds.
        """
        if owner is None:
            return await self._call(self._load_exact, name, revision or "")
        return await self._call(self._load, _Wf(owner, name), revision)

    async def load_file(
        self, name: str, ext: str, revision: str | None = None, *, owner: str
    ) -> tuple[bytes, str]:
        """An extra file (e.g. `nc`) saved beside the workflow: (bytes, full sha)."""
        return await self._call(self._load_file, _Wf(owner, name), ext, revision)

    async def history(
        self, name: str, *, owner: str, limit: int = 50, cursor: str | None = None
    ) -> History:
        return await self._call(self._history, _Wf(owner, name), limit, cursor)

    async def diff(
        self, name: str, *, owner: str, old: str | None = None, new: str | None = None
    ) -> tuple[str | None, str, WorkflowDiff]:
        """(from sha, to sha, diff). `new` defaults to the latest, `old` to its parent."""
        return await self._call(self._diff, _Wf(owner, name), old, new)

    async def delete(self, name: str, *, owner: str, author: str, message: str | None = None
                     ) -> str:
        """Commit a tombstone: the workflow leaves listings; its history stays. → the sha."""
        return await self._call(self._delete, _Wf(owner, name), author, message)

    async def names(self, owner: str) -> list[Listed]:
        """The owner's workflows that are not deleted, by name."""
        return await self._call(self._names, owner)

    async def fetch_state(self, owner: str, url: str) -> dict[str, Any] | None:
        return await self._call(self._fetch_state, owner, url)

    async def set_fetch_state(self, owner: str, url: str, state: dict[str, Any]) -> None:
        await self._call(self._set_fetch_state, owner, url, state)

    # -- sync parts, run in a thread ------------------------------------------------------------
    def _head(self, repo: Repo, wf: _Wf) -> Commit | None:
        sha = gitrepo.read_ref(repo, wf.ref)
        return gitrepo.get_commit(repo, sha) if sha else None

    def _doc(self, repo: Repo, wf: _Wf, commit: Commit | None) -> dict[str, Any] | None:
        if commit is None:
            return None
        blob = gitrepo.read_path(repo, commit, wf.path())
        return json.loads(blob.data) if blob is not None else None

    def _parent(self, repo: Repo, commit: Commit) -> Commit | None:
        return gitrepo.get_commit(repo, commit.parents[0]) if commit.parents else None

    def _walk(self, repo: Repo, start: Commit | None) -> Any:
        c = start
        while c is not None:
            yield c
            c = self._parent(repo, c)

    def _belongs(self, repo: Repo, wf: _Wf, commit: Commit) -> bool:
        """A commit of this workflow's branch holds its file or its tombstone."""
        files = gitrepo.list_dir(repo, commit, wf.dir)
        return f"{wf.name}.json" in files or f"{wf.name}.deleted" in files

    def _resolve(self, repo: Repo, wf: _Wf, revision: str | None) -> Commit:
        head = self._head(repo, wf)
        if head is None:
            raise _missing(wf.name)
        if not revision:
            return head
        rev = revision.strip().lower()
        if not _REV.match(rev):
            raise BadRequest(f"revision '{revision}' is not a commit sha", {"field": "revision"})
        if len(rev) < MIN_SHA:
            raise BadRequest(f"revision '{revision}' is too short: give at least {MIN_SHA} hex "
                             "digits", {"field": "revision"})
        if gitrepo.is_full_sha(rev):
            c = gitrepo.get_commit(repo, rev.encode())
            if c is not None and self._belongs(repo, wf, c):
                return c
        else:
            found = [c for c in self._walk(repo, head) if c.id.decode().startswith(rev)]
            if len(found) > 1:
                raise BadRequest(f"revision '{revision}' is ambiguous", {"field": "revision"})
            if found:
                return found[0]
        raise NotFound(f"no revision '{revision}' of workflow '{wf.name}'",
                       {"name": wf.name, "revision": revision})

    def _save(self, wf: _Wf, text: str, author: str, message: str | None, base: str | None,
              extras: dict[str, bytes], source: str | None) -> Saved:
        repo = self._open()
        files = {wf.path(): text.encode(), **{wf.path(ext): d for ext, d in extras.items()}}
        tree, objects = gitrepo.build_tree(files)
        while True:
            head = self._head(repo, wf)
            if base is not None:
                self._check_base(repo, wf, head, base)
            if head is not None and head.tree == tree:
                return Saved(name=wf.name, owner=wf.owner, revision=head.id.decode(),
                             changed=False)
            diff = diff_workflows(self._doc(repo, wf, head), json.loads(text))
            msg = message or summary("publish", wf.name, diff)
            if source:
                msg += f"\n\nSource: {source}"
            commit = gitrepo.new_commit(tree, [head.id] if head else [], author=author,
                                        message=msg, committer="dagbroker")
            gitrepo.add_objects(repo, [*objects, commit], self.stale_lock_s)
            if gitrepo.cas_ref(repo, wf.ref, head.id if head else None, commit.id,
                               self.stale_lock_s):
                return Saved(name=wf.name, owner=wf.owner, revision=commit.id.decode(),
                             changed=True, message=msg, diff=diff)
            # The branch moved under us (another process): re-read it and decide again.

    def _check_base(self, repo: Repo, wf: _Wf, head: Commit | None, base: str) -> None:
        rev = base.strip().lower()
        current = head.id.decode() if head is not None else None
        if current is not None and len(rev) >= MIN_SHA and current.startswith(rev):
            return
        try:
            old: Commit | None = self._resolve(repo, wf, base) if current else None
        except (NotFound, BadRequest):
            old = None
        diff = (diff_workflows(self._doc(repo, wf, old), self._doc(repo, wf, head))
                if old is not None else None)
        raise Conflict(
            f"workflow '{wf.name}' changed since revision {base}: its latest revision is "
            f"{current}" if current else f"workflow '{wf.name}' has no revision {base}",
            {"name": wf.name, "base": base, "current": current,
             "diff": msgspec.to_builtins(diff) if diff is not None else None},
        )

    def _load(self, wf: _Wf, revision: str | None) -> tuple[str, str]:
        data, sha = self._load_file(wf, "json", revision)
        return data.decode(), sha

    def _load_exact(self, name: str, revision: str) -> tuple[str, str]:
        _check_name(name)
        repo = self._open()
        rev = revision.strip().lower()
        commit = gitrepo.get_commit(repo, rev.encode()) if gitrepo.is_full_sha(rev) else None
        if commit is None:
            raise NotFound(f"no revision '{revision}' of workflow '{name}'",
                           {"name": name, "revision": revision})
        for owner_dir in gitrepo.list_dir(repo, commit, "workflows"):
            blob = gitrepo.read_path(repo, commit, f"workflows/{owner_dir}/{name}.json")
            if blob is not None:
                return blob.data.decode(), commit.id.decode()
        raise NotFound(f"no workflow '{name}' at revision {rev[:12]}",
                       {"name": name, "revision": revision})

    def _load_file(self, wf: _Wf, ext: str, revision: str | None) -> tuple[bytes, str]:
        repo = self._open()
        commit = self._resolve(repo, wf, revision)
        blob = gitrepo.read_path(repo, commit, wf.path(ext))
        if blob is None:
            if ext == "json" and not revision:
                raise NotFound(f"no workflow '{wf.name}' (it was deleted)", {"name": wf.name})
            what = "workflow" if ext == "json" else f"{ext} file of workflow"
            raise NotFound(f"no {what} '{wf.name}' at revision {commit.id.decode()[:12]}",
                           {"name": wf.name, "revision": commit.id.decode()})
        return blob.data, commit.id.decode()

    def _entry(self, repo: Repo, wf: _Wf, commit: Commit, cache: dict[bytes, Any]
               ) -> HistoryEntry:
        def doc(c: Commit | None) -> dict[str, Any] | None:
            if c is None:
                return None
            if c.id not in cache:
                cache[c.id] = self._doc(repo, wf, c)
            return cache[c.id]  # type: ignore[no-any-return]

        new = doc(commit)
        counts = diff_counts(diff_workflows(doc(self._parent(repo, commit)), new))
        return HistoryEntry(
            revision=commit.id.decode(),
            author=commit.author.decode(errors="replace").split(" <")[0],
            committed_at=commit.commit_time * 1000,
            message=commit.message.decode(errors="replace").strip(),
            deleted=new is None,
            **counts,
        )

    def _history(self, wf: _Wf, limit: int, cursor: str | None) -> History:
        repo = self._open()
        start: Commit | None = self._resolve(repo, wf, cursor)
        cache: dict[bytes, Any] = {}
        entries: list[HistoryEntry] = []
        c = start
        while c is not None and len(entries) < limit:
            entries.append(self._entry(repo, wf, c, cache))
            c = self._parent(repo, c)
        return History(name=wf.name, owner=wf.owner, revisions=entries,
                       next=c.id.decode() if c is not None else None)

    def _diff(self, wf: _Wf, old: str | None, new: str | None
              ) -> tuple[str | None, str, WorkflowDiff]:
        repo = self._open()
        to = self._resolve(repo, wf, new)
        frm = self._resolve(repo, wf, old) if old else self._parent(repo, to)
        diff = diff_workflows(self._doc(repo, wf, frm), self._doc(repo, wf, to))
        return (frm.id.decode() if frm else None), to.id.decode(), diff

    def _delete(self, wf: _Wf, author: str, message: str | None) -> str:
        repo = self._open()
        stamp = json.dumps({"deleted_by": author}).encode() + b"\n"
        tree, objects = gitrepo.build_tree({wf.path("deleted"): stamp})
        while True:
            head = self._head(repo, wf)
            if head is None or self._doc(repo, wf, head) is None:
                raise _missing(wf.name)
            commit = gitrepo.new_commit(tree, [head.id], author=author,
                                        message=message or f"delete {wf.name}",
                                        committer="dagbroker")
            gitrepo.add_objects(repo, [*objects, commit], self.stale_lock_s)
            if gitrepo.cas_ref(repo, wf.ref, head.id, commit.id, self.stale_lock_s):
                return commit.id.decode()

    def _names(self, owner: str) -> list[Listed]:
        repo = self._open()
        base = f"{WF_REFS}/{gitrepo.ref_component(owner)}/".encode()
        out: list[Listed] = []
        for key in repo.refs.keys(base=base):
            sha = gitrepo.read_ref(repo, base + key)
            head = gitrepo.get_commit(repo, sha) if sha else None
            if head is None:
                continue
            for fname in gitrepo.list_dir(repo, head, f"workflows/{gitrepo.ref_component(owner)}"):
                if fname.endswith(".json"):  # the name is read from the tree, not the ref
                    out.append(Listed(name=fname[: -len(".json")], revision=head.id.decode(),
                                      updated_at=head.commit_time * 1000))
        return sorted(out, key=lambda x: x.name)

    def _fetch_ref(self, owner: str, url: str) -> bytes:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return f"{FETCH_REFS}/{gitrepo.ref_component(owner)}/{digest}".encode()

    def _fetch_state(self, owner: str, url: str) -> dict[str, Any] | None:
        repo = self._open()
        sha = gitrepo.read_ref(repo, self._fetch_ref(owner, url))
        if sha is None:
            return None
        blob = repo[sha]
        return json.loads(blob.data) if isinstance(blob, Blob) else None

    def _set_fetch_state(self, owner: str, url: str, state: dict[str, Any]) -> None:
        repo = self._open()
        blob = Blob.from_string(json.dumps({"url": url, **state}, sort_keys=True).encode())
        gitrepo.add_objects(repo, [blob], self.stale_lock_s)
        ref = self._fetch_ref(owner, url)
        gitrepo.retry_locked(lambda: repo.refs.set_if_equals(ref, None, blob.id),
                             self.stale_lock_s)
