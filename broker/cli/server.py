"""`dagbroker serve` and `dagbroker up` (embedded Redis + broker + one local worker)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from broker.api.app import create_app, write_address_file
from broker.api.appkeys import EMBEDDED, SETTINGS
from broker.api.logs_api import artifact_store_url
from broker.api.operations import SHUTDOWN
from broker.auth.bootstrap import admin_token_path
from broker.config import DEFAULT_PORT, Settings, default_home, settings_from_env
from broker.logs import setup_logging
from broker.tls import TLSConfigError, context_from_settings

logger = logging.getLogger("dagbroker")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (default $DAGBROKER_HOME or ~/.dagbroker)")
    p.add_argument("--redis-url", help="external Redis (default: an embedded redis-server)")
    p.add_argument("--prefix", help="Redis key prefix (default dagb)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help=f"HTTP port (default {DEFAULT_PORT})")
    p.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default=None,
        help="AOF fsync policy of the embedded Redis (default everysec)",
    )
    p.add_argument(
        "--lease-ms",
        type=int,
        default=None,
        help="reclaim a dispatched task whose lease was not renewed for this long",
    )
    p.add_argument(
        "--claim-idle-ms",
        type=int,
        default=None,
        help="take over completions another broker left pending this long",
    )
    p.add_argument(
        "--expand-timeout",
        type=float,
        default=None,
        help="fail a run whose expansion has not finished after this many seconds",
    )
    p.add_argument("--policy", help="deployment policy file (JSON/YAML): forbidden executors, "
                   "command patterns, substitutions")
    p.add_argument("--nodeworks-plugin", action="append", default=None, metavar="MODULE",
                   help="a module adding Nodeworks node types (repeatable; workers import it too)")
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    p.add_argument("--artifacts", metavar="URL",
                   help="the artifact store workers upload to, served for downloads: "
                        "file:///dir or s3://bucket/prefix (default DATA_DIR/artifacts; "
                        "$DAGBROKER_ARTIFACTS)")
    p.add_argument("--s3-endpoint-url", metavar="URL",
                   help="S3-compatible endpoint of an s3:// store (MinIO, moto); default AWS "
                        "($DAGBROKER_S3_ENDPOINT_URL)")
    p.add_argument("--aws-region", metavar="REGION",
                   help="region of an s3:// store (default: the AWS configuration chain; "
                        "$DAGBROKER_AWS_REGION)")


def _tls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS and WSS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--client-ca", help="PEM CA: require client certificates signed by it (mTLS)"
    )


def add_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="run the broker (REST API + scheduler loops)")
    _common(s)
    _tls(s)
    s.set_defaults(func=cmd_serve)
    u = sub.add_parser("up", help="all-in-one: embedded Redis + broker + one local worker")
    _common(u)
    u.add_argument(
        "--slots", type=int, default=max(2, os.cpu_count() or 2), help="slots of the local worker"
    )
    u.add_argument("--classes", default="cpu", help="classes the local worker serves")
    u.add_argument("--example", help="publish and run this workflow file once started")
    u.add_argument(
        "--exit-after-example",
        action="store_true",
        help="stop after the example run finishes (exit code = its outcome)",
    )
    u.set_defaults(func=cmd_up)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return settings_from_env(
        data_dir=args.data_dir,
        redis_url=args.redis_url,
        prefix=args.prefix,
        host=args.host,
        port=args.port,
        appendfsync=args.appendfsync,
        lease_ms=args.lease_ms,
        broker_claim_idle_ms=args.claim_idle_ms,
        expand_timeout_s=args.expand_timeout,
        policy_file=args.policy,
        artifacts_url=args.artifacts,
        s3_endpoint_url=args.s3_endpoint_url,
        aws_region=args.aws_region,
        nodeworks_plugins=args.nodeworks_plugin,
        log_json=args.log_json or None,
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        client_ca=getattr(args, "client_ca", None),
    )


async def start_site(app: web.Application, settings: Settings) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    tls = context_from_settings(settings)
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
    await site.start()
    url = f"{'https' if tls else 'http'}://{settings.host}:{settings.port}"
    write_address_file(settings, url)
    return runner, url


def _announce(app: web.Application, url: str) -> None:
    embedded = app.get(EMBEDDED)
    print(f"dagbroker listening on {url}", flush=True)
    print(f"  API:    {url}/api/v1/status", flush=True)
    print(f"  UI:     {url}/", flush=True)
    if embedded is not None:
        print(f"  Redis:  {embedded.cli_command}", flush=True)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    app = create_app(settings)
    app[SHUTDOWN] = stop
    runner, url = await start_site(app, settings)
    _announce(app, url)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await runner.cleanup()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    setup_logging(settings.log_json)
    try:
        context_from_settings(settings)  # refuse bad TLS options before starting anything
    except TLSConfigError as e:
        print(f"dagbroker serve: {e}", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings))


async def spawn_worker(
    settings: Settings, redis_url: str, classes: str, slots: int, log_json: bool
) -> asyncio.subprocess.Process:
    cmd = [
        sys.executable,
        "-m",
        "worker",
        "--redis-url",
        redis_url,
        "--prefix",
        settings.prefix,
        "--classes",
        classes,
        "--slots",
        str(slots),
        "--data-dir",
        str(Path(settings.data_dir) / "worker"),
        "--artifacts",  # the store the broker serves downloads from
        artifact_store_url(settings),
        *(["--s3-endpoint-url", settings.s3_endpoint_url] if settings.s3_endpoint_url else []),
        *(["--aws-region", settings.aws_region] if settings.aws_region else []),
    ]
    if log_json:
        cmd.append("--log-json")
    log_path = Path(settings.data_dir) / "worker.log"
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=log, stderr=log)
    print(f"  Worker: {classes} × {slots} slots, log {log_path}", flush=True)
    return proc


async def up(args: argparse.Namespace, settings: Settings) -> int:
    from broker.cli.example import run_example

    stop = asyncio.Event()
    _stop_on_signals(stop)
    app = create_app(settings)
    app[SHUTDOWN] = stop
    runner, url = await start_site(app, settings)
    embedded = app.get(EMBEDDED)
    redis_url = embedded.url if embedded is not None else app[SETTINGS].redis_url
    assert redis_url
    worker = await spawn_worker(settings, redis_url, args.classes, args.slots, settings.log_json)
    _announce(app, url)
    code = 0
    try:
        if args.example:
            token = admin_token_path(settings.data_path).read_text().strip()
            code = await run_example(url, Path(args.example), stop, token)
            if args.exit_after_example:
                stop.set()
        if not stop.is_set():
            print("dagbroker is up; press Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(worker.wait(), 60)
            except TimeoutError:
                worker.kill()
        await runner.cleanup()
    return code


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    setup_logging(settings.log_json, logging.WARNING if not args.log_json else logging.INFO)
    print(f"data dir: {settings.data_dir or default_home()}", flush=True)
    return asyncio.run(up(args, settings))
