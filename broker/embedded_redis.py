"""The embedded, private redis-server that `dagbroker up` / `serve` start in their data dir.

Layout of `{data_dir}/redis/` (everything a user needs to inspect it with redis-cli):

    redis.conf      the configuration we start it with (rewritten at every start)
    redis.sock      the unix socket it listens on (or, if the path is too long, a loopback port)
    redis.pid       its pid while it runs (removed by redis on a clean shutdown)
    redis.log       its log; the tail is quoted when it fails to start
    appendonly.aof  the AOF: the data survives a stop/start in the same data dir
    lock            flock'ed by the process that owns the server, so two brokers never share it

A redis-server left behind by a crashed broker (pid file present, lock free) is shut down
cleanly (SHUTDOWN persists the AOF) before a new one starts, so there are never two servers
writing the same AOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shlex
import signal
import socket
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.errors import RedisUnsafe
from broker.redis_binary import redis_cli_path, redis_server_path

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux and 104 on macOS/BSD, NUL terminator included.
SUN_PATH_MAX_BYTES = 104
APPENDFSYNC_CHOICES = frozenset({"always", "everysec", "no"})
LOG_TAIL_LINES = 20

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
PING_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 1.0


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started, reached or stopped."""


def socket_path_fits(path: Path) -> bool:
    """True if `path` fits in a unix socket address (sun_path) on every supported OS."""
    return len(os.fsencode(str(path))) < SUN_PATH_MAX_BYTES


def free_tcp_port() -> int:
    """A port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file, or a note that it is missing."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:]) or f"({path} is empty)"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis_in(pid: int, directory: Path) -> bool:
    """Guard against a recycled pid: where /proc exists, the process must be a redis-server
    whose working directory is `directory` (redis chdirs to its `dir`)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self/cmdline").exists():
        return True  # no procfs (macOS): trust the pid file
    try:
        if b"redis" not in (proc / "cmdline").read_bytes():
            return False
        return Path(os.readlink(proc / "cwd")) == directory
    except OSError:
        return False


async def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Poll until `pid` no longer exists; False if it still does after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not pid_alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(PING_INTERVAL_S)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class EmbeddedRedis:
    """A private redis-server in `{data_dir}/redis/`, on a unix socket when the path allows.

    Use as `async with EmbeddedRedis(data_dir) as r: ...r.url...`, or call `start()`/`stop()`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        appendfsync: str = "everysec",
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        if appendfsync not in APPENDFSYNC_CHOICES:
            raise ValueError(
                f"appendfsync must be one of {sorted(APPENDFSYNC_CHOICES)}, not {appendfsync!r}"
            )
        self.dir = Path(data_dir).expanduser().resolve() / "redis"
        self.appendfsync = appendfsync
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.socket_path = self.dir / "redis.sock"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self.conf_file = self.dir / "redis.conf"
        self.lock_file = self.dir / "lock"
        self.port: int | None = None  # set when we fall back to TCP
        self.proc: asyncio.subprocess.Process | None = None
        self._lock_fd: int | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def uses_socket(self) -> bool:
        return self.port is None

    @property
    def url(self) -> str:
        """The redis-py URL of the server: unix socket or loopback port, database 0."""
        if self.port is None:
            return f"unix://{urllib.parse.quote(str(self.socket_path))}?db=0"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def cli_command(self) -> str:
        """The shell line that opens redis-cli on this server."""
        cli = shlex.quote(redis_cli_path())
        if self.port is None:
            return f"{cli} -s {shlex.quote(str(self.socket_path))}"
        return f"{cli} -p {self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the server and wait until it answers PING; raise EmbeddedRedisError if not."""
        if self.proc is not None and self.proc.returncode is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            await self._stop_leftover()
            self.port = None if socket_path_fits(self.socket_path) else free_tcp_port()
            if self.port is not None:
                logger.warning(
                    "socket path %s is longer than %d bytes; using 127.0.0.1:%d instead",
                    self.socket_path, SUN_PATH_MAX_BYTES - 1, self.port,
                )
            self.conf_file.write_text(self._config_text())
            await self._spawn()
            await self._wait_ready()
        except BaseException:
            await self._kill_quietly()
            self._release_lock()
            raise
        logger.info(
            "embedded redis-server pid %s at %s (appendfsync %s); inspect with: %s",
            self.pid, self.url, self.appendfsync, self.cli_command,
        )

    async def stop(self) -> None:
        """SHUTDOWN the server (persisting the AOF), falling back to SIGTERM, then SIGKILL."""
        proc = self.proc
        try:
            if proc is not None and proc.returncode is None:
                if await self._shutdown_via_client() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                await self._wait_exit(proc)
        finally:
            self.proc = None
            self._release_lock()

    # -- start-up pieces --------------------------------------------------------------------

    def _config_text(self) -> str:
        def q(value: str | Path) -> str:
            return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "# written by dagbroker at every start of the embedded redis-server; edits are lost",
            "daemonize no",
            f"dir {q(self.dir)}",
            f"pidfile {q(self.pid_file)}",
            f"logfile {q(self.log_file)}",
            "loglevel notice",
            "bind 127.0.0.1",
            "protected-mode yes",
        ]
        if self.port is None:
            lines += ["port 0", f"unixsocket {q(self.socket_path)}", "unixsocketperm 700"]
        else:
            lines += [f"port {self.port}"]
        lines += [
            "appendonly yes",
            'appendfilename "appendonly.aof"',
            f"appendfsync {self.appendfsync}",
            'save ""',
            "maxmemory-policy noeviction",
        ]
        return "\n".join(lines) + "\n"

    async def _spawn(self) -> None:
        with self.log_file.open("ab") as log:
            # Own session: a Ctrl-C in the terminal reaches the broker, which stops Redis last.
            self.proc = await asyncio.create_subprocess_exec(
                redis_server_path(), str(self.conf_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=str(self.dir), start_new_session=True,
            )

    async def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = self._client(timeout_s=PROBE_TIMEOUT_S)
        try:
            while True:
                if self.proc.returncode is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {self.proc.returncode} while starting "
                        f"(config {self.conf_file}); last lines of {self.log_file}:\n"
                        + tail_file(self.log_file)
                    )
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    if await client.ping():
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"redis-server (pid {self.proc.pid}) did not answer PING at {self.url} "
                        f"within {self.start_timeout_s:.0f}s; last lines of {self.log_file}:\n"
                        + tail_file(self.log_file)
                    )
                await asyncio.sleep(PING_INTERVAL_S)
        finally:
            await client.aclose()

    def _client(self, timeout_s: float) -> aredis.Redis:
        """A probe client: short timeouts and no retries (we poll with our own deadline)."""
        common: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.port is None:
            return aredis.Redis(unix_socket_path=str(self.socket_path), **common)
        return aredis.Redis(host="127.0.0.1", port=self.port, **common)

    # -- the lock and a leftover server from a crashed run -----------------------------------

    def _acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EmbeddedRedisError(
                f"the embedded Redis in {self.dir} is in use by another dagbroker process "
                f"(pid {owner}); stop it first, or give this one its own DAGBROKER_HOME"
            ) from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock_fd, 0)
        os.close(self._lock_fd)  # closing the fd drops the flock
        self._lock_fd = None

    async def _stop_leftover(self) -> None:
        """Shut down a redis-server a crashed run left on our socket / pid file (we hold the lock,
        so nobody else owns it). A new server would otherwise unlink its socket and both would
        write the same AOF."""
        pid = _read_pid(self.pid_file)
        if pid is not None and not (pid_alive(pid) and _is_redis_in(pid, self.dir)):
            pid = None
        told: int | None = None
        if self.socket_path.exists() and socket_path_fits(self.socket_path):
            self.port = None
            told = await self._shutdown_via_client()
        if told is None and pid is None:
            for stale in (self.pid_file, self.socket_path):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            return
        leftover = told or pid
        logger.warning(
            "a redis-server from a previous run (pid %s) was still running in %s; "
            "shut it down before starting a new one", leftover, self.dir,
        )
        if told is None and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # redis treats SIGTERM as SHUTDOWN
        if leftover:
            await self._wait_pid_exit(leftover)
        for stale in (self.pid_file, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    async def _shutdown_via_client(self) -> int | None:
        """Send SHUTDOWN (the server persists the AOF and exits). Returns the server's pid
        (0 if it did not say), or None if no server answered or SHUTDOWN was refused."""
        client = self._client(timeout_s=PROBE_TIMEOUT_S)
        try:
            info = await client.info("server")
        except (RedisError, OSError):
            await client.aclose()
            return None
        try:
            await client.shutdown()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass  # the server closed the connection as it went down
        except RedisError as e:
            logger.warning("SHUTDOWN of the embedded redis-server failed: %s", e)
            return None
        finally:
            await client.aclose()
        return int(info.get("process_id", 0))

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
            return
        except TimeoutError:
            pass
        logger.error(
            "redis-server pid %d did not stop within %.0fs; killing it. Log tail:\n%s",
            proc.pid, self.stop_timeout_s, tail_file(self.log_file),
        )
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    async def _wait_pid_exit(self, pid: int) -> None:
        """Wait for a process that is not our child (no wait() possible); SIGKILL it if it
        outlives the stop timeout."""
        if await _wait_gone(pid, self.stop_timeout_s):
            return
        logger.error("leftover redis-server pid %d did not stop; killing it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await _wait_gone(pid, self.stop_timeout_s)

    async def _kill_quietly(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# -- safety check for any Redis the broker uses -------------------------------------------

_CONFIG_UNAVAILABLE_MARKERS = ("unknown command", "noperm", "no permissions", "disabled")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _read_maxmemory_policy(client: aredis.Redis) -> str | None:
    try:
        config = await client.config_get("maxmemory-policy")
    except ResponseError as e:
        if not any(m in str(e).lower() for m in _CONFIG_UNAVAILABLE_MARKERS):
            raise
        logger.info("CONFIG is not available (%s); reading INFO memory instead", e)
    else:
        for name, value in config.items():
            if _text(name) == "maxmemory-policy":
                return _text(value)
    info = await client.info("memory")
    policy = info.get("maxmemory_policy")
    return None if policy is None else _text(policy)


async def check_redis_safe(client: aredis.Redis) -> None:
    """Raise RedisUnsafe unless the server's maxmemory-policy is `noeviction`.

    Reads `CONFIG GET maxmemory-policy`; where CONFIG is disabled (managed Redis) it falls
    back to `INFO memory`. If neither tells, it logs a warning and lets the broker start.
    """
    policy = await _read_maxmemory_policy(client)
    if policy is None:
        logger.warning(
            "could not read maxmemory-policy from Redis; make sure it is 'noeviction', "
            "or Redis may evict broker state under memory pressure"
        )
        return
    if policy == "noeviction":
        return
    raise RedisUnsafe(
        f"Redis uses maxmemory-policy {policy!r}; dagbroker needs 'noeviction'. With "
        f"{policy!r}, Redis deletes keys when it reaches maxmemory: task hashes, ready queues, "
        "task streams and consumer groups would vanish, so runs hang or lose tasks silently. "
        "With 'noeviction' Redis refuses writes instead and the broker reports the error. "
        "Fix: redis-cli CONFIG SET maxmemory-policy noeviction (and set "
        "'maxmemory-policy noeviction' in redis.conf, or your provider's parameter group, "
        "so it survives a restart).",
        details={
            "maxmemory_policy": policy,
            "required": "noeviction",
            "fix": "CONFIG SET maxmemory-policy noeviction",
        },
    )
