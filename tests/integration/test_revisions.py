"""The revision store on a real repository: several processes on one repo, and SIGKILL mid-commit.

Each child process holds its own RevisionStore on the same bare repository and takes orders on
stdin: `save <name> <n> [base]` answers `ok <sha> <changed>` or `conflict <current sha>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.repo import Repo

from broker import gitrepo
from broker.errors import Conflict
from broker.revisions import RevisionStore

CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from broker.errors import Conflict
from broker.revisions import RevisionStore

def doc(name, n):
    return json.dumps({"name": name, "nodes": {f"n{n}": {"command": f"echo {n}"}}})

async def serve(store):
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        verb, name, n, *base = line.split()
        try:
            s = await store.save(name, doc(name, n), owner="o", author=verb,
                                 base=base[0] if base else None)
            print("ok", s.revision, s.changed, flush=True)
        except Conflict as e:
            print("conflict", e.details["current"], flush=True)

async def forever(store, name):
    n = 0
    while True:
        await store.save(name, doc(name, n) + " " * (n % 7), owner="o", author="crash")
        n += 1
        print(n, flush=True)

store = RevisionStore(Path(sys.argv[1]), stale_lock_s=float(sys.argv[3]))
asyncio.run(serve(store) if sys.argv[2] == "serve" else forever(store, sys.argv[2]))
"""


def doc(name: str, n: int) -> str:
    return json.dumps({"name": name, "nodes": {f"n{n}": {"command": f"echo {n}"}}})


class Child:
    def __init__(self, repo: Path, mode: str, env: dict[str, str], stale_lock_s: float = 10.0
                 ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(repo), mode, str(stale_lock_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def recv(self) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "child died"
        return line.split()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def repo_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "workflows.git"
    gitrepo.open_repo(path).close()
    yield path


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def chain(path: Path, name: str) -> list[str]:
    """The workflow's branch, newest first, checking every commit and document is complete."""
    repo = Repo(str(path))
    try:
        ref = f"refs/heads/workflows/o/{name}".encode()
        sha: bytes | None = repo.refs[ref]
        out = []
        while sha:
            commit = repo[sha]
            tree_blob = gitrepo.read_path(repo, commit, f"workflows/o/{name}.json")  # type: ignore[arg-type]
            assert tree_blob is not None
            json.loads(tree_blob.data)
            out.append(sha.decode())
            sha = commit.parents[0] if commit.parents else None  # type: ignore[attr-defined]
        return out
    finally:
        repo.close()


def test_racing_processes_same_base_exactly_one_wins(
    repo_path: Path, child_env: dict[str, str]
) -> None:
    children = [Child(repo_path, "serve", child_env) for _ in range(2)]
    try:
        store = RevisionStore(repo_path)
        base = run(store.save("race", doc("race", 0), owner="o", author="t")).revision  # type: ignore[attr-defined]
        for rnd in range(1, 9):
            for i, c in enumerate(children):
                c.send(f"save race {rnd * 10 + i} {base}")
            answers = [c.recv() for c in children]
            wins = [a for a in answers if a[0] == "ok"]
            assert len(wins) == 1, answers
            loser = next(a for a in answers if a[0] == "conflict")
            assert loser[1] == wins[0][1]  # the 409 names the winner as current
            base = wins[0][1]
        assert len(chain(repo_path, "race")) == 9  # the base and one winner per round
        store.close()
    finally:
        for c in children:
            c.stop()


def test_processes_without_base_never_lose_an_edit(
    repo_path: Path, child_env: dict[str, str]
) -> None:
    children = [Child(repo_path, "serve", child_env) for _ in range(2)]
    try:
        for n in range(15):
            for i, c in enumerate(children):
                c.send(f"save busy {n * 2 + i}")
        shas = {c.recv()[1] for c in children for _ in range(15)}
    finally:
        for c in children:
            c.stop()
    history = chain(repo_path, "busy")
    assert len(history) == 30 and set(history) == shas  # linear: every edit on top of the last


def test_sigkill_mid_commit_leaves_a_readable_repo(
    repo_path: Path, child_env: dict[str, str]
) -> None:
    for _ in range(3):
        child = Child(repo_path, "crash", child_env, stale_lock_s=0.2)
        while int(child.recv()[0]) < 5:
            pass
        os.kill(child.proc.pid, signal.SIGKILL)  # somewhere inside the next commit
        child.proc.wait(10)
        history = chain(repo_path, "crash")  # the branch names a complete commit
        assert len(history) >= 5
        if shutil.which("git"):
            fsck = subprocess.run(["git", "--git-dir", str(repo_path), "fsck", "--no-dangling"],
                                  capture_output=True, text=True)
            assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # a later writer goes on; it removes the lock files the killed writers left (no writer is
    # alive now, so every lock file is stale: stale_lock_s=0)
    store = RevisionStore(repo_path, stale_lock_s=0.0)
    before = chain(repo_path, "crash")
    saved = run(store.save("crash", doc("crash", 999), owner="o", author="after"))
    text, sha = run(store.load("crash", owner="o"))  # type: ignore[misc]
    assert sha == saved.revision and json.loads(text)["nodes"] == {"n999": {"command": "echo 999"}}  # type: ignore[attr-defined]
    assert chain(repo_path, "crash")[1:] == before
    store.close()
    assert not [p for p in repo_path.rglob("*.lock") if "objects" in p.parts or "refs" in p.parts]


def test_store_conflict_details_and_extra_files(repo_path: Path) -> None:
    store = RevisionStore(repo_path)
    first = run(store.save("chart", doc("chart", 1), owner="o", author="t",
                           extra_files={"nc": b"NODEWORKS"}))
    data, sha = run(store.load_file("chart", "nc", owner="o"))  # type: ignore[misc]
    assert data == b"NODEWORKS" and sha == first.revision  # type: ignore[attr-defined]
    second = run(store.save("chart", doc("chart", 2), owner="o", author="t"))
    with pytest.raises(Conflict) as e:
        run(store.save("chart", doc("chart", 3), owner="o", author="t",
                       base=first.revision))  # type: ignore[attr-defined]
    assert e.value.details["current"] == second.revision  # type: ignore[attr-defined]
    assert e.value.details["diff"]["added"] == ["n2"]
    text, _ = run(store.load("chart", first.revision, owner=None))  # type: ignore[misc, attr-defined]
    assert json.loads(text)["nodes"] == {"n1": {"command": "echo 1"}}
    store.close()


def test_a_held_ref_lock_blocks_the_branch_until_it_goes_stale(repo_path: Path) -> None:
    """The compare-and-swap goes through git's `<ref>.lock`: while another writer holds it, the
    branch does not move; a lock left by a dead writer is removed once stale."""
    store = RevisionStore(repo_path, stale_lock_s=0.3)
    first = run(store.save("locked", doc("locked", 1), owner="o", author="t"))
    lock = repo_path / "refs" / "heads" / "workflows" / "o" / "locked.lock"
    lock.write_text("held by someone else\n")
    started = time.monotonic()
    second = run(store.save("locked", doc("locked", 2), owner="o", author="t"))
    assert time.monotonic() - started >= 0.3  # it waited for the lock, never ignored it
    assert not lock.exists() and chain(repo_path, "locked") == [
        second.revision, first.revision]  # type: ignore[attr-defined]
    store.close()
