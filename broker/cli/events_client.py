"""Client verbs for events and timers: `events push|status`, `timers start|status|cancel`.

Standard library only, like broker.cli.client (whose BrokerClient and error handling they use).
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from broker.cli.client import (
    EXIT_OK,
    BrokerClient,
    ClientError,
    _print_json,
    _run_verb,
    format_timestamp_ms,
    parse_params,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _json_arg(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ClientError(f"{flag}: not JSON: {text!r}") from e


def _events_push(args: argparse.Namespace, client: BrokerClient) -> int:
    doc: dict[str, Any] = {"key": args.key, "payload": _json_arg(args.payload, "--payload")}
    for field, value in (("id", args.id), ("owner", args.owner), ("retain_s", args.retain)):
        if value is not None:
            doc[field] = value
    out = client.post_json("events/push", doc)
    if args.json:
        _print_json(out)
        return EXIT_OK
    dup = " (already pushed with this id)" if out.get("duplicate") else ""
    print(f"{out['owner']}/{out['key']}: {out['delivered']} waiting task(s) completed{dup}")
    for run in out.get("runs") or []:
        print(f"started run {run}")
    for err in out.get("errors") or []:
        print(f"not started: {err.get('workflow')}: {err.get('error')}")
    return EXIT_OK


def _events_status(args: argparse.Namespace, client: BrokerClient) -> int:
    out = client.request("GET", "events/status", query={"key": args.key} if args.key else None)
    if args.json:
        _print_json(out)
        return EXIT_OK
    for w in out.get("waiting") or []:
        tasks = ", ".join(f"{t['run']}:{t['node']}" for t in w["tasks"])
        print(f"waiting  {w['owner']}/{w['key']}: {tasks}")
    for r in out.get("recent") or []:
        print(f"pushed   {format_timestamp_ms(r.get('ts'))}  {r['owner']}/{r['key']}  "
              f"id {r['id']}  completed {r['delivered']}")
    return EXIT_OK


def format_timer(t: Mapping[str, Any]) -> str:
    act = t.get("action") or {}
    what = (f"execute {act['execute']['name']}" if "execute" in act
            else f"push {act.get('push', {}).get('key')}")
    when = t.get("cron") or t.get("kind")
    nxt = t.get("next_fire_at") or "-"
    err = f"  error: {t['last_error']}" if t.get("last_error") else ""
    return (f"{t['id']}  {t['state']:<9}  {when:<13}  next {nxt:<24}  fired {t['fired']}  "
            f"{what}  {t.get('name') or ''}{err}").rstrip()


def _timers_start(args: argparse.Namespace, client: BrokerClient) -> int:
    if args.execute:
        action: dict[str, Any] = {"execute": {"name": args.execute,
                                              "params": parse_params(args.param)}}
    else:
        action = {"push": {"key": args.push, "payload": _json_arg(args.payload, "--payload")}}
    doc: dict[str, Any] = {"action": action}
    for field, value in (("after_s", args.after), ("at", args.at), ("cron", args.cron),
                         ("name", args.name)):
        if value is not None:
            doc[field] = value
    out = client.post_json("timers/start", doc)
    if args.json:
        _print_json(out)
    else:
        print(format_timer(out["timer"]))
    return EXIT_OK


def _timers_status(args: argparse.Namespace, client: BrokerClient) -> int:
    out = client.request("GET", "timers/status", query={"all": "1"} if args.all else None)
    if args.json:
        _print_json(out)
    else:
        for t in out.get("timers") or []:
            print(format_timer(t))
    return EXIT_OK


def _timers_cancel(args: argparse.Namespace, client: BrokerClient) -> int:
    out = client.request("DELETE", f"timers/{urllib.parse.quote(args.timer_id, safe='')}")
    if args.json:
        _print_json(out)
    else:
        print(format_timer(out["timer"]))
    return EXIT_OK


def _verb(fn: Callable[[argparse.Namespace, BrokerClient], int]) -> Any:
    return lambda args: _run_verb(fn, args)


def add_event_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                       common: argparse.ArgumentParser) -> None:
    """Register `events push|status` and `timers start|status|cancel`."""
    ev = sub.add_parser("events", help="push event keys; see waiting tasks")
    evs = ev.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    p = evs.add_parser("push", parents=[common], help="push an event key",
                       description="Complete your tasks waiting for KEY (the payload becomes "
                                   "their result) and start your workflows listing KEY in "
                                   "on_event.")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--payload", metavar="JSON", help="the payload (JSON; default null)")
    p.add_argument("--id", help="idempotency id: the same id pushed again changes nothing")
    p.add_argument("--retain", type=float, metavar="S",
                   help="seconds a task that starts waiting later still gets it (default 60)")
    p.add_argument("--owner", help="push another user's key (admins only)")
    p.set_defaults(func=_verb(_events_push))
    s = evs.add_parser("status", parents=[common], help="waiting tasks and recent pushes")
    s.add_argument("--key", help="only this key")
    s.set_defaults(func=_verb(_events_status))

    tm = sub.add_parser("timers", help="start, list and cancel timers")
    tms = tm.add_subparsers(dest="timers_command", metavar="ACTION", required=True)
    st = tms.add_parser("start", parents=[common], help="start a timer",
                        description="Fire once after S seconds or at a time, or on a cron "
                                    "schedule (UTC): start a workflow or push an event key.")
    when = st.add_mutually_exclusive_group(required=True)
    when.add_argument("--after", type=float, metavar="S", help="fire once, S seconds from now")
    when.add_argument("--at", metavar="TIME", help="fire once at an ISO-8601 time (UTC if no zone)")
    when.add_argument("--cron", metavar="EXPR", help="5-field cron expression, e.g. '*/5 * * * *'")
    what = st.add_mutually_exclusive_group(required=True)
    what.add_argument("--execute", metavar="NAME", help="start the latest revision of NAME")
    what.add_argument("--push", metavar="KEY", help="push event KEY")
    st.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="parameter of --execute (repeatable)")
    st.add_argument("--payload", metavar="JSON", help="payload of --push")
    st.add_argument("--name", help="a label for the timer")
    st.set_defaults(func=_verb(_timers_start))
    ls = tms.add_parser("status", parents=[common], help="your timers and their next fire time")
    ls.add_argument("--all", action="store_true", help="include finished and cancelled timers")
    ls.set_defaults(func=_verb(_timers_status))
    c = tms.add_parser("cancel", parents=[common], help="cancel a timer")
    c.add_argument("timer_id", metavar="ID")
    c.set_defaults(func=_verb(_timers_cancel))
