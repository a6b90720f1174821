"""Real processes for end-to-end tests: `dagbroker serve` brokers and `python -m worker` workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from helpers import free_port

TERMINAL = ("succeeded", "failed", "cancelled")


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def term(self, timeout_s: float = 60) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout_s)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """Brokers and workers sharing one Redis (the test session's redis-server) and prefix."""

    def __init__(self, redis_url: str, prefix: str, tmp: Path, env: dict[str, str]) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.tmp = tmp
        self.env = env
        self.procs: list[Proc] = []
        self.data_dir = tmp / "broker"

    def _spawn(self, name: str, args: list[str]) -> Proc:
        log = self.tmp / f"{name}.log"
        fh = log.open("wb")
        popen = subprocess.Popen(
            args, stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=str(self.tmp)
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_broker(
        self, *extra: str, port: int | None = None, tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> tuple[Proc, str]:
        """`tls`: the broker serves HTTPS (give --tls-cert/--tls-key in `extra`); the
        readiness probe connects with this client context. `host`: the address it listens on
        (and the returned URL's)."""
        port = port or free_port()
        args = [
            sys.executable,
            "-m",
            "broker.cli.main",
            "serve",
            "--redis-url",
            self.redis_url,
            "--prefix",
            self.prefix,
            "--host",
            host,
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir),
            *extra,
        ]
        proc = self._spawn(f"broker-{port}", args)
        url = f"{'https' if tls else 'http'}://{host}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(f"{url}/api/v1/status", timeout=1, context=tls).read()
                TOKENS[url] = (self.data_dir / "admin.token").read_text().strip()
                return proc, url
            except OSError:
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"broker did not start:\n{proc.output()}") from None
                time.sleep(0.05)

    def start_worker(
        self,
        *extra: str,
        name: str,
        classes: str = "cpu",
        slots: int = 2,
        heartbeat_ttl: float = 2.0,
        wrap: Sequence[str] = (),
        redis_url: str | None = None,
    ) -> Proc:
        """`wrap`: an argv prefix (e.g. `ip netns exec NS`); `redis_url`: the worker's own
        route to the cluster's Redis (default the cluster's)."""
        args = [
            *wrap,
            sys.executable,
            "-m",
            "worker",
            "--redis-url",
            redis_url or self.redis_url,
            "--prefix",
            self.prefix,
            "--classes",
            classes,
            "--slots",
            str(slots),
            "--id",
            name,
            "--data-dir",
            str(self.tmp / name),
            "--heartbeat-ttl",
            str(heartbeat_ttl),
            *extra,
        ]
        return self._spawn(name, args)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.alive():
                p.popen.kill()
                p.popen.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.procs)


TOKENS: dict[str, str] = {}  # broker url → admin token, filled by Cluster.start_broker


async def api(
    url: str, method: str, path: str, body: Any = None, token: str | None = None, **params: Any
) -> Any:
    """Call the broker's API as its admin (or with `token`); raises on a 4xx/5xx answer."""
    headers = {"Content-Type": "application/json"}
    bearer = token or TOKENS.get(url)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    async with aiohttp.ClientSession() as http:
        data = json.dumps(body) if body is not None else None
        async with http.request(
            method, url + path, data=data, params=params or None, headers=headers
        ) as r:
            out = await r.json()
            if r.status >= 400:
                raise AssertionError(f"{method} {path} → {r.status}: {out}")
            return out


async def publish_and_run(url: str, wf: dict[str, Any], **execute: Any) -> str:
    await api(url, "POST", "/api/v1/workflow/publish", wf)
    out = await api(url, "POST", "/api/v1/workflow/execute", {"name": wf["name"], **execute})
    return str(out["run"])


async def wait_run(
    url: str, run: str, timeout_s: float = 60, cluster: Cluster | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        st = await api(url, "GET", "/api/v1/workflow/status", run=run)
        if st["run"]["state"] in TERMINAL:
            return st
        if time.monotonic() > deadline:
            logs = cluster.logs() if cluster else ""
            raise AssertionError(f"run {run} not finished after {timeout_s}s: {st['run']}\n{logs}")
        await asyncio.sleep(0.05)
