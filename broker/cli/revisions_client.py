"""Client verbs for revisions and provenance: get, history, diff, delete, provenance, rerun.

Standard library only, like broker.cli.client (whose BrokerClient and error handling they use).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.cli.client import (
    EXIT_OK,
    BrokerClient,
    ClientError,
    _print_json,
    _run_verb,
    is_tty,
    watch_run,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_RUN_ID = re.compile(r"^r[0-9a-z]{4,40}$")


def _query(args: argparse.Namespace, **extra: str | None) -> dict[str, str]:
    q = {"name": args.name, **extra}
    if getattr(args, "owner", None):
        q["owner"] = args.owner
    return {k: v for k, v in q.items() if v}


def format_history(hist: Mapping[str, Any]) -> list[str]:
    """`REVISION  DATE  AUTHOR  CHANGES  MESSAGE`, newest first."""
    lines = []
    for e in hist.get("revisions") or []:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.get("committed_at", 0) / 1000))
        changes = "deleted" if e.get("deleted") else (
            f"+{len(e.get('added') or [])} -{len(e.get('removed') or [])} "
            f"~{len(e.get('changed') or [])}")
        first = str(e.get("message") or "").splitlines()[0] if e.get("message") else ""
        lines.append(f"{str(e.get('revision'))[:12]}  {when}  {e.get('author', '?'):<10}  "
                     f"{changes:<10}  {first}")
    if hist.get("next"):
        lines.append(f"(more: --cursor {hist['next']})")
    return lines or ["(no revisions)"]


def format_diff(d: Mapping[str, Any]) -> list[str]:
    """One line per added / removed node, and per changed field: `~ node.field: old → new`."""
    lines = [f"{str(d.get('from') or '(none)')[:12]} → {str(d.get('to'))[:12]}"]
    lines += [f"+ {n}" for n in d.get("added") or []]
    lines += [f"- {n}" for n in d.get("removed") or []]
    for node, fields in (d.get("changed") or {}).items():
        for field, ch in fields.items():
            lines.append(f"~ {node}.{field}: {json.dumps(ch.get('old'))} → "
                         f"{json.dumps(ch.get('new'))}")
    for field, ch in (d.get("workflow") or {}).items():
        lines.append(f"~ {field}: {json.dumps(ch.get('old'))} → {json.dumps(ch.get('new'))}")
    return lines if len(lines) > 1 else [*lines, "(no changes)"]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _get(args: argparse.Namespace, client: BrokerClient) -> int:
    out = client.request("GET", "workflow/get", query=_query(args, revision=args.revision))
    _print_json(out if args.json else out.get("workflow"))
    return EXIT_OK


def _history(args: argparse.Namespace, client: BrokerClient) -> int:
    q = _query(args, cursor=args.cursor, limit=str(args.limit))
    out = client.request("GET", "workflow/history", query=q)
    if args.json:
        _print_json(out)
    else:
        print("\n".join(format_history(out)))
    return EXIT_OK


def _diff(args: argparse.Namespace, client: BrokerClient) -> int:
    q = _query(args, **{"from": args.old, "to": args.new})
    out = client.request("GET", "workflow/diff", query=q)
    if args.json:
        _print_json(out)
    else:
        print("\n".join(format_diff(out)))
    return EXIT_OK


def _delete(args: argparse.Namespace, client: BrokerClient) -> int:
    doc = {k: v for k, v in (("name", args.name), ("owner", args.owner),
                             ("message", args.message)) if v}
    out = client.post_json("workflow/delete", doc)
    if args.json:
        _print_json(out)
    else:
        print(f"deleted {args.name} (revision {out.get('revision')}); its history stays")
    return EXIT_OK


def _provenance(args: argparse.Namespace, client: BrokerClient) -> int:
    """A run id → its manifest; a sha256 or a local file (hashed here) → who produced it."""
    what = args.target
    if _RUN_ID.match(what) and not Path(what).exists():
        _print_json(client.request("GET", f"runs/{urllib.parse.quote(what, safe='')}/provenance"))
        return EXIT_OK
    if Path(what).is_file():
        digest = file_sha256(Path(what))
    elif _SHA256.match(what):
        digest = what.lower()
    else:
        raise ClientError(f"{what!r} is neither a file, a sha256 nor a run id")
    out = client.request("GET", "provenance", query={"sha256": digest})
    if args.json:
        _print_json(out)
        return EXIT_OK
    print(f"sha256 {digest}")
    for e in out.get("produced_by") or []:
        print(f"  {e.get('kind')} {e.get('name')} of task {e.get('task')} in run {e.get('run')}: "
              f"{e.get('workflow')}@{str(e.get('revision'))[:12]} (owner {e.get('owner')})")
    return EXIT_OK


def _rerun(args: argparse.Namespace, client: BrokerClient) -> int:
    out = client.post_json(f"runs/{urllib.parse.quote(args.run_id, safe='')}/rerun", {})
    run_id = str(out["run"])
    if args.json:
        print(json.dumps(out, ensure_ascii=False), flush=True)
    else:
        print(f"rerun of {args.run_id}: {out.get('name')}@{str(out.get('revision'))[:12]}; "
              "run id:", file=sys.stderr)
        print(run_id, flush=True)
    if not args.watch:
        return EXIT_OK
    stream = sys.stderr if args.json else sys.stdout
    code, _ = watch_run(client, run_id, stream, tty=is_tty(stream) and not args.json)
    return code


def _verb(fn: Any) -> Any:
    return lambda args: _run_verb(fn, args)


def add_revision_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                          common: argparse.ArgumentParser) -> None:
    """Register get, history, diff, delete, provenance and rerun."""
    owner = argparse.ArgumentParser(add_help=False)
    owner.add_argument("--owner", help="another user's workflow (admins only)")

    g = sub.add_parser("get", parents=[common, owner], help="print a workflow (any revision)")
    g.add_argument("name", metavar="NAME")
    g.add_argument("-r", "--revision", help="commit sha (7+ hex digits); default: the latest")
    g.set_defaults(func=_verb(_get))

    h = sub.add_parser("history", parents=[common, owner], help="a workflow's revisions")
    h.add_argument("name", metavar="NAME")
    h.add_argument("--limit", type=int, default=50)
    h.add_argument("--cursor", help="continue from this revision (printed as `more:`)")
    h.set_defaults(func=_verb(_history))

    d = sub.add_parser("diff", parents=[common, owner], help="what changed between revisions",
                       description="Nodes added, removed and changed (field by field) from "
                                   "OLD (default: the parent of NEW) to NEW (default: latest).")
    d.add_argument("name", metavar="NAME")
    d.add_argument("old", metavar="OLD", nargs="?")
    d.add_argument("new", metavar="NEW", nargs="?")
    d.set_defaults(func=_verb(_diff))

    x = sub.add_parser("delete", parents=[common, owner], help="delete a workflow (history stays)")
    x.add_argument("name", metavar="NAME")
    x.add_argument("-m", "--message", help="commit message of the deletion")
    x.set_defaults(func=_verb(_delete))

    p = sub.add_parser("provenance", parents=[common], help="which run produced a file",
                       description="Given a file (hashed locally) or a sha256: the run, task "
                                   "and workflow revision that produced it. Given a run id: "
                                   "the run's provenance manifest.")
    p.add_argument("target", metavar="FILE_OR_SHA256_OR_RUN")
    p.set_defaults(func=_verb(_provenance))

    r = sub.add_parser("rerun", parents=[common], help="run a run again, exactly",
                       description="A new run of the revision and parameters a run recorded.")
    r.add_argument("run_id", metavar="RUN")
    r.add_argument("-w", "--watch", action="store_true",
                   help="follow the new run until it ends; exit 0 only if it succeeded")
    r.set_defaults(func=_verb(_rerun))
