"""Client verbs for accounts: `login`, `users list|create`, `tokens list|create|revoke`.

Standard library only, like broker.cli.client (whose BrokerClient and error handling they use).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from broker.cli.client import (
    ADDRESS_FILE,
    EXIT_OK,
    BrokerClient,
    ClientError,
    _print_json,
    _run_verb,
    dagbroker_home,
    format_timestamp_ms,
)


def save_login(url: str, token: str, env: dict[str, str] | None = None) -> str:
    """Write {url, token} to $DAGBROKER_HOME/broker.json (mode 0600); returns the path."""
    home = dagbroker_home(env if env is not None else dict(os.environ))
    home.mkdir(parents=True, exist_ok=True)
    path = home / ADDRESS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({"url": url, "token": token}) + "\n")
    os.chmod(path, 0o600)
    return str(path)


def _login(args: argparse.Namespace, client: BrokerClient) -> int:
    if not client.token:
        raise ClientError("login needs --token (or $DAGBROKER_TOKEN)")
    me = client.request("GET", "users/me")
    path = save_login(client.url, client.token)
    print(f"logged in to {client.url} as {me['id']} (scopes: {', '.join(me['scopes'])}); "
          f"saved in {path}")
    return EXIT_OK


def _users(args: argparse.Namespace, client: BrokerClient) -> int:
    if args.action == "create":
        if not args.id:
            raise ClientError("users create needs a user id")
        out = client.request("POST", "users", body=json.dumps(
            {"id": args.id, "admin": args.admin}).encode())
        if args.json:
            _print_json(out)
        else:
            print(f"created user {out['user']['id']}{' (admin)' if args.admin else ''}")
            print(f"token (shown once): {out['token']}")
        return EXIT_OK
    out = client.request("GET", "users")
    if args.json:
        _print_json(out)
        return EXIT_OK
    for u in out["users"]:
        flags = " admin" if u["admin"] else ""
        print(f"{u['id']:<24}{flags}  since {format_timestamp_ms(u['created_at'])}")
    return EXIT_OK


def _tokens(args: argparse.Namespace, client: BrokerClient) -> int:
    if args.action == "create":
        doc: dict[str, Any] = {"name": args.name or "cli", "scopes": args.scope or ["user"]}
        if args.expires_in:
            doc["expires_in_s"] = args.expires_in
        if args.user:
            doc["user"] = args.user
        out = client.request("POST", "tokens", body=json.dumps(doc).encode())
        if args.json:
            _print_json(out)
        else:
            print(f"token {out['id']} for {out['user']} ({', '.join(out['scopes'])}), shown once:")
            print(out["token"])
        return EXIT_OK
    if args.action == "revoke":
        if not args.name:
            raise ClientError("tokens revoke needs the token id")
        client.request("DELETE", f"tokens/{args.name}")
        print(f"revoked {args.name}")
        return EXIT_OK
    out = client.request("GET", "tokens", query={"user": args.user} if args.user else None)
    if args.json:
        _print_json(out)
        return EXIT_OK
    for t in out["tokens"]:
        state = "revoked" if t["revoked_at"] else (
            f"expires {format_timestamp_ms(t['expires_at'])}" if t["expires_at"] else "active")
        print(f"{t['id']}  {t['name']:<20} {','.join(t['scopes']):<16} {state}")
    return EXIT_OK


def add_account_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    lg = sub.add_parser("login", parents=[common], help="check a token and save it for the CLI",
                        description="Verify --token against --url and save both in "
                                    f"$DAGBROKER_HOME/{ADDRESS_FILE} (mode 0600).")
    lg.set_defaults(func=lambda a: _run_verb(_login, a))
    us = sub.add_parser("users", parents=[common], help="list or create users (admins)")
    us.add_argument("action", choices=("list", "create"), nargs="?", default="list")
    us.add_argument("id", nargs="?", help="the new user's id (create)")
    us.add_argument("--admin", action="store_true", help="create an admin")
    us.set_defaults(func=lambda a: _run_verb(_users, a))
    tk = sub.add_parser("tokens", parents=[common], help="list, create or revoke your tokens")
    tk.add_argument("action", choices=("list", "create", "revoke"), nargs="?", default="list")
    tk.add_argument("name", nargs="?", help="create: the token's name; revoke: its id")
    tk.add_argument("--scope", action="append",
                    help="user (default), runner, metrics, events:<key>, admin (repeatable)")
    tk.add_argument("--expires-in", type=float, metavar="SECONDS")
    tk.add_argument("--user", help="admins: another user's tokens")
    tk.set_defaults(func=lambda a: _run_verb(_tokens, a))
