"""Provenance manifests in the workflow repository, and the sha256 index over them.

* `refs/runs/<run>`: a commit whose tree holds `provenance.json` (one per finished run,
  created once with add-if-new: writing it again is a no-op).
* `refs/provenance/sha256/<2 hex>/<62 hex>`: a blob, the JSON list of what produced that
  content: `{run, task, kind (output | result), name, workflow, owner, revision,
  finished_at}`, newest last, at most MAX_ENTRIES. Updated by compare-and-swap.

Index entries are written before the run's ref, so a run that has its ref is fully indexed; a
writer killed in between is repeated on the next attempt (entries are de-duplicated).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dulwich.objects import Blob
from dulwich.repo import Repo

from broker import gitrepo
from broker.provenance import canonical_json, index_entries

RUNS = "refs/runs"
INDEX = "refs/provenance/sha256"
MAX_ENTRIES = 100
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    return bool(_SHA256.match(text))


class ProvenanceStore(gitrepo.GitStore):
    """write / read manifests, look up a sha256. One lock per store; dulwich in a thread."""

    async def has(self, run: str) -> bool:
        return await self._call(self._commit_of, run) is not None  # type: ignore[no-any-return]

    async def write(self, manifest: dict[str, Any]) -> str:
        """Commit the manifest (unless the run has one) → the commit sha of `refs/runs/<run>`."""
        return await self._call(self._write, manifest)  # type: ignore[no-any-return]

    async def read(self, run: str) -> dict[str, Any] | None:
        return await self._call(self._read, run)  # type: ignore[no-any-return]

    async def lookup(self, sha256: str) -> list[dict[str, Any]]:
        return await self._call(self._lookup, sha256)  # type: ignore[no-any-return]

    # -- sync parts, run in a thread ------------------------------------------------------------
    def _run_ref(self, run: str) -> bytes:
        return f"{RUNS}/{gitrepo.ref_component(run)}".encode()

    def _index_ref(self, sha256: str) -> bytes:
        return f"{INDEX}/{sha256[:2]}/{sha256[2:]}".encode()

    def _commit_of(self, run: str) -> bytes | None:
        return gitrepo.read_ref(self._open(), self._run_ref(run))

    def _read(self, run: str) -> dict[str, Any] | None:
        repo = self._open()
        sha = gitrepo.read_ref(repo, self._run_ref(run))
        commit = gitrepo.get_commit(repo, sha) if sha else None
        blob = gitrepo.read_path(repo, commit, "provenance.json") if commit else None
        if blob is None:
            return None
        doc: dict[str, Any] = json.loads(blob.data)
        doc["commit"] = sha.decode() if sha else None
        return doc

    def _entries(self, repo: Repo, ref: bytes) -> tuple[bytes | None, list[dict[str, Any]]]:
        sha = gitrepo.read_ref(repo, ref)
        if sha is None:
            return None, []
        blob = repo[sha]
        return sha, json.loads(blob.data) if isinstance(blob, Blob) else []

    def _lookup(self, sha256: str) -> list[dict[str, Any]]:
        return self._entries(self._open(), self._index_ref(sha256))[1]

    def _index_add(self, repo: Repo, sha256: str, entry: dict[str, Any]) -> None:
        ref = self._index_ref(sha256)
        key = (entry["run"], entry["task"], entry["kind"], entry["name"])
        while True:
            old, entries = self._entries(repo, ref)
            if any((e["run"], e["task"], e["kind"], e["name"]) == key for e in entries):
                return
            entries = [*entries, entry][-MAX_ENTRIES:]
            blob = Blob.from_string(json.dumps(entries, sort_keys=True).encode())
            gitrepo.add_objects(repo, [blob], self.stale_lock_s)
            if gitrepo.cas_ref(repo, ref, old, blob.id, self.stale_lock_s):
                return

    def _write(self, manifest: dict[str, Any]) -> str:
        repo = self._open()
        run = manifest["run"]
        ref = self._run_ref(run)
        existing = gitrepo.read_ref(repo, ref)
        if existing is not None:
            return existing.decode()
        for sha256, entry in index_entries(manifest):
            self._index_add(repo, sha256, entry)
        data = json.dumps(json.loads(canonical_json(manifest)), indent=1, sort_keys=True)
        tree, objects = gitrepo.build_tree({"provenance.json": data.encode() + b"\n"})
        commit = gitrepo.new_commit(
            tree, [], author=manifest["owner"] or "unknown", committer="dagbroker",
            message=f"provenance of run {run}: {manifest['workflow']}@"
                    f"{manifest['revision'][:12]} {manifest['state']}",
        )
        gitrepo.add_objects(repo, [*objects, commit], self.stale_lock_s)
        if gitrepo.cas_ref(repo, ref, None, commit.id, self.stale_lock_s):
            return commit.id.decode()
        return (gitrepo.read_ref(repo, ref) or commit.id).decode()  # another writer won
