"""Shared fixtures: one real redis-server per test session, a unique key prefix per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from broker.keys import Keys
from broker.redis_binary import redis_server_path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import free_port  # noqa: E402


class RedisServer:
    """A throwaway redis-server process on a loopback port, started by the tests."""

    def __init__(self, workdir: Path, port: int | None = None, appendonly: bool = False,
                 bind: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.bind = bind  # listen addresses; keep 127.0.0.1 (`url`, the start probe)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_path(),
            "--port",
            str(self.port),
            "--bind",
            *self.bind,
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """Each test gets its own key prefix instead of flushing a shared Redis."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
async def rds(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for subprocesses (broker/worker processes) started by tests."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def admin_token(data_dir: Path) -> str:
    """The token the broker wrote on first start (`{data_dir}/admin.token`)."""
    return (Path(data_dir) / "admin.token").read_text().strip()


@pytest.fixture
def make_client(aiohttp_client: Any, redis_server: RedisServer, prefix: str, tmp_path: Path) -> Any:
    """Factory: a test client of the real app on the test Redis, authenticated as the admin.

    `await make_client(**settings_overrides)`; `client.token` holds the admin token.
    """
    from broker.api.app import create_app
    from broker.config import Settings

    async def make(**overrides: Any) -> Any:
        opts: dict[str, Any] = {"data_dir": str(tmp_path / "broker"), "redis_url": redis_server.url,
                                "prefix": prefix, **overrides}
        client = await aiohttp_client(create_app(Settings(**opts)))
        client.token = admin_token(Path(opts["data_dir"]))
        client.session.headers["Authorization"] = f"Bearer {client.token}"
        return client

    return make
