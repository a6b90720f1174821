"""`dagbroker`: one CLI for the server side (up, serve, worker) and the client verbs."""

from __future__ import annotations

import argparse
import sys

import broker


def build_parser() -> argparse.ArgumentParser:
    from broker.cli import server
    from broker.cli.client import add_client_commands

    parser = argparse.ArgumentParser(
        prog="dagbroker", description="Redis-streams workflow broker with asyncio workers."
    )
    parser.add_argument("--version", action="version", version=f"dagbroker {broker.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    server.add_server_commands(sub)
    w = sub.add_parser(
        "worker", help="run a worker (see `dagbroker worker --help`)", add_help=False
    )
    w.set_defaults(func=None)
    r = sub.add_parser("runners", help="`runners deploy USER@HOST …`: start a worker over SSH",
                       add_help=False)
    r.set_defaults(func=None)
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "worker":
        from worker.main import main as worker_main

        return worker_main(argv[1:])
    if argv[:2] == ["runners", "deploy"]:
        from worker.deploy import deploy_main

        return deploy_main(argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
