"""The embedded redis-server: start/stop, AOF persistence, leftovers, and the safety check."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from conftest import RedisServer

from broker.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    check_redis_safe,
    socket_path_fits,
)
from broker.errors import RedisUnsafe


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def test_starts_on_socket_with_safe_persistent_config(embedded: EmbeddedRedis) -> None:
    assert embedded.uses_socket
    assert embedded.url == f"unix://{embedded.socket_path}?db=0"
    assert embedded.cli_command.endswith(f"redis-cli -s {embedded.socket_path}")
    client = aredis.Redis.from_url(embedded.url, decode_responses=True)
    try:
        assert await client.ping()
        await client.set("k", "v")
        config = await client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "everysec"
        assert config["maxmemory-policy"] == "noeviction"
        assert config["save"] == ""
        assert config["port"] == "0"
        assert Path(str(config["dir"])) == embedded.dir
        await check_redis_safe(client)
    finally:
        await client.aclose()
    assert (embedded.dir / "appendonly.aof").is_file()
    assert (embedded.dir / "redis.log").is_file()
    assert int(embedded.pid_file.read_text()) == embedded.pid


async def test_stop_ends_the_process_and_removes_the_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    await server.start()
    pid = server.pid
    assert pid is not None and pid_alive(pid)
    await server.stop()
    assert not pid_alive(pid)
    assert not server.socket_path.exists()
    assert not server.pid_file.exists()
    await server.stop()  # idempotent


async def test_data_survives_stop_and_start_in_the_same_dir(tmp_path: Path) -> None:
    async with EmbeddedRedis(tmp_path) as first:
        client = aredis.Redis.from_url(first.url, decode_responses=True)
        await client.hset("dagb:run:r1", mapping={"state": "running", "total": "3"})
        await client.xadd("dagb:events", {"type": "run", "run": "r1"})
        await client.aclose()
    async with EmbeddedRedis(tmp_path) as second:
        client = aredis.Redis.from_url(second.url, decode_responses=True)
        assert await client.hgetall("dagb:run:r1") == {"state": "running", "total": "3"}
        assert await client.xlen("dagb:events") == 1
        await client.aclose()


async def test_appendfsync_is_configurable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")
    async with EmbeddedRedis(tmp_path, appendfsync="always") as server:
        client = aredis.Redis.from_url(server.url, decode_responses=True)
        assert (await client.config_get("appendfsync"))["appendfsync"] == "always"
        await client.aclose()


async def test_odd_characters_in_the_data_dir(tmp_path: Path) -> None:
    async with EmbeddedRedis(tmp_path / "my data #1") as server:
        assert server.uses_socket
        client = aredis.Redis.from_url(server.url)
        assert await client.ping()
        await client.aclose()


async def test_long_socket_path_falls_back_to_a_loopback_port(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 110)
    assert not socket_path_fits(data_dir / "redis" / "redis.sock")
    async with EmbeddedRedis(data_dir) as server:
        assert not server.uses_socket
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.cli_command.endswith(f"redis-cli -p {server.port}")
        client = aredis.Redis.from_url(server.url)
        assert await client.ping()
        await client.aclose()


async def test_second_owner_of_the_same_dir_is_refused(embedded: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedRedisError, match="in use by another dagbroker process"):
        await EmbeddedRedis(embedded.dir.parent).start()
    client = aredis.Redis.from_url(embedded.url)
    assert await client.ping()  # the first server was left alone
    await client.aclose()


async def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "appendonly.aof").write_text("this is not an AOF\n")
    server = EmbeddedRedis(tmp_path, start_timeout_s=10)
    with pytest.raises(EmbeddedRedisError, match="(?s)exited with code.*append only file"):
        await server.start()
    assert server.proc is None
    # The lock was released: a fixed data dir can be started again.
    (tmp_path / "redis" / "appendonly.aof").unlink()
    async with EmbeddedRedis(tmp_path):
        pass


CRASHING_OWNER = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aredis
    from broker.embedded_redis import EmbeddedRedis

    async def main() -> None:
        server = EmbeddedRedis(sys.argv[1])
        await server.start()
        client = aredis.Redis.from_url(server.url)
        await client.set("before-crash", "kept")
        await client.aclose()
        print(server.pid, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("on_socket", [True, False], ids=["socket", "tcp"])
async def test_leftover_server_of_a_crashed_run_is_shut_down(
    tmp_path: Path, child_env: dict[str, str], on_socket: bool
) -> None:
    data_dir = tmp_path if on_socket else tmp_path / ("d" * 110)
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_OWNER, str(data_dir),
        stdout=asyncio.subprocess.PIPE, env=child_env,
    )
    assert owner.stdout is not None
    old_pid = int(await asyncio.wait_for(owner.stdout.readline(), 30))
    try:
        owner.send_signal(signal.SIGKILL)  # the broker dies; its redis-server lives on
        await owner.wait()
        assert pid_alive(old_pid)
        async with EmbeddedRedis(data_dir) as server:
            assert server.uses_socket == on_socket
            assert not pid_alive(old_pid), "two redis-servers on one data dir"
            assert server.pid != old_pid
            client = aredis.Redis.from_url(server.url, decode_responses=True)
            assert await client.get("before-crash") == "kept"
            await client.aclose()
    finally:
        if pid_alive(old_pid):
            os.kill(old_pid, signal.SIGKILL)


async def test_shared_server_is_safe(rds: aredis.Redis) -> None:
    await check_redis_safe(rds)  # reads only; the shared server stays as it is


@pytest.fixture
def throwaway_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "throwaway").start()
    yield server
    server.stop()


async def test_eviction_policy_is_refused(throwaway_server: RedisServer) -> None:
    client = aredis.Redis.from_url(throwaway_server.url)
    try:
        await client.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(RedisUnsafe) as caught:
            await check_redis_safe(client)
    finally:
        await client.aclose()
    message = caught.value.message
    assert "'allkeys-lru'" in message
    assert "noeviction" in message
    assert "CONFIG SET maxmemory-policy noeviction" in message
    assert caught.value.details["maxmemory_policy"] == "allkeys-lru"


async def test_policy_read_from_info_when_config_is_forbidden(
    throwaway_server: RedisServer,
) -> None:
    admin = aredis.Redis.from_url(throwaway_server.url)
    await admin.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"],
                            commands=["+@all", "-config"])
    restricted = aredis.Redis.from_url(throwaway_server.url, username="app", password="pw")
    try:
        await check_redis_safe(restricted)  # noeviction, learnt from INFO memory
        await admin.config_set("maxmemory-policy", "volatile-ttl")
        with pytest.raises(RedisUnsafe, match="'volatile-ttl'"):
            await check_redis_safe(restricted)
    finally:
        await restricted.aclose()
        await admin.aclose()
