"""One SSH connection per host for a batch, shared by its tasks (asyncssh).

Tasks open channels on it, at most `max_sessions` at once (OpenSSH's MaxSessions is 10 per
connection by default; a kill or an SFTP channel needs room too). If the connection drops,
`reconnect` opens one new connection for everyone who needs to clean up after it.
Host keys are always checked: against the entry's known_hosts file, else ~/.ssh/known_hosts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

import asyncssh

if TYPE_CHECKING:
    from worker.executors.ssh_inventory import SshHost

logger = logging.getLogger(__name__)

KEEPALIVE_COUNT_MAX = 3
RUN_TIMEOUT_S = 60.0  # a housekeeping command (kill, rm) on the remote host
CONNECT_ERRORS = (OSError, asyncssh.Error, TimeoutError)  # the connection failed or dropped


def connect_options(host: SshHost) -> dict[str, Any]:
    options: dict[str, Any] = {
        "port": host.port,
        "connect_timeout": host.connect_timeout_s,
        "keepalive_interval": host.keepalive_interval_s,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "known_hosts": os.path.expanduser(host.known_hosts) if host.known_hosts else (),
    }
    if host.user:
        options["username"] = host.user
    if host.keys():
        options["client_keys"] = host.keys()
    return options


async def open_connection(host: SshHost) -> asyncssh.SSHClientConnection:
    """Connect and authenticate (OSError / asyncssh.Error if it cannot)."""
    return await asyncssh.connect(host.host, **connect_options(host))


class HostSession:
    """The batch's connection to one host, its channel limit and its SFTP client."""

    def __init__(self, name: str, host: SshHost) -> None:
        self.name = name
        self.host = host
        self.conn: asyncssh.SSHClientConnection | None = None
        self.channels = asyncio.Semaphore(max(1, host.max_sessions - 1))
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self.connections = 0  # opened so far (1 unless it dropped)

    async def open(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self.conn is None or self.conn.is_closed():
                self._sftp = None
                self.conn = await open_connection(self.host)
                self.connections += 1
            return self.conn

    async def reconnect(self, broken: asyncssh.SSHClientConnection | None) -> None:
        """A new connection, unless another task already replaced `broken`."""
        async with self._lock:
            if self.conn is broken or self.conn is None or self.conn.is_closed():
                self.conn = None
        await self.open()

    async def sftp(self) -> asyncssh.SFTPClient:
        conn = await self.open()
        async with self._lock:
            if self._sftp is None:
                self._sftp = await conn.start_sftp_client()
            return self._sftp

    async def run(self, command: str) -> asyncssh.SSHCompletedProcess:
        """A short housekeeping command (no check of its exit status)."""
        conn = await self.open()
        return await asyncio.wait_for(conn.run(command, check=False), RUN_TIMEOUT_S)

    async def close(self) -> None:
        conn, self.conn, self._sftp = self.conn, None, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()
