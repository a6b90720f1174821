"""Client verbs: `logs RUN TASK [-f]` (live log lines) and `artifacts RUN [--get SHA -o FILE]`.

Standard library only, like broker.cli.client.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from broker.cli.client import (
    API_PREFIX,
    EXIT_OK,
    BrokerClient,
    ClientError,
    _print_json,
    _run_verb,
)

FINISHED = ("succeeded", "failed", "upstream_failed", "cancelled")


def _logs(args: argparse.Namespace, client: BrokerClient) -> int:
    path = f"runs/{args.run_id}/logs/{urllib.parse.quote(args.task, safe='')}"
    after = "0-0"
    while True:
        out = client.request("GET", path, query={"after": after, "limit": "1000"})
        for line in out["lines"]:
            prefix = f"[{line['attempt']}] " if args.attempts else ""
            print(prefix + line["line"], flush=True)
        after = out["last_id"]
        if not args.follow or (out["state"] in FINISHED and not out["lines"]):
            return EXIT_OK
        if not out["lines"]:
            time.sleep(0.5)


def _artifacts(args: argparse.Namespace, client: BrokerClient) -> int:
    if args.get:
        return _download(args, client)
    out = client.request("GET", f"runs/{args.run_id}/artifacts")
    if args.json:
        _print_json(out)
        return EXIT_OK
    for a in out["artifacts"]:
        print(f"{a['sha256']}  {a['size']:>10}  {a['task']}/{a['name']}  (attempt {a['attempt']})")
    return EXIT_OK


def _download(args: argparse.Namespace, client: BrokerClient) -> int:
    url = f"{client.url}{API_PREFIX}/runs/{args.run_id}/artifacts/{args.get}"
    headers: dict[str, Any] = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            to_stdout = args.output in (None, "-")
            target = sys.stdout.buffer if to_stdout else Path(args.output).open("wb")
            try:
                while chunk := resp.read(1 << 20):
                    target.write(chunk)
            finally:
                if target is not sys.stdout.buffer:
                    target.close()
    except urllib.error.HTTPError as e:
        raise ClientError(f"download failed: HTTP {e.code} {e.reason}") from e
    return EXIT_OK


def add_log_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    lg = sub.add_parser("logs", parents=[common], help="print a task's log lines (-f: follow)")
    lg.add_argument("run_id", metavar="RUN")
    lg.add_argument("task", metavar="TASK", help="task id, e.g. simulate or sim[3]")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    lg.add_argument("--attempts", action="store_true", help="prefix lines with their attempt")
    lg.set_defaults(func=lambda a: _run_verb(_logs, a))
    ar = sub.add_parser("artifacts", parents=[common], help="list or download a run's outputs")
    ar.add_argument("run_id", metavar="RUN")
    ar.add_argument("--get", metavar="SHA256", help="download this artifact")
    ar.add_argument("-o", "--output", help="file to write (default: stdout)")
    ar.set_defaults(func=lambda a: _run_verb(_artifacts, a))
