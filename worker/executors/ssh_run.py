"""Running one remote command over a HostSession: output to the log, stop, timeout, drops.

The outcome is a RemoteExit: the exit status, or why the command did not finish on its own
(stopped, timed out, connection lost). Whatever ended it early, its process group on the
host is killed (TERM, then KILL after the grace period) before this returns, over a new
connection if the old one dropped; if that cannot be done, `orphaned` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import asyncssh

from worker.executors.ssh_remote import alive_command, kill_command

if TYPE_CHECKING:
    from pathlib import Path

    from worker.executors.ssh_session import HostSession

logger = logging.getLogger(__name__)

READ_BYTES = 65536
PGID_WAIT_S = 5.0  # a stop right after the start: time for the task to record its group


@dataclass(frozen=True)
class RemoteExit:
    status: int | None = None  # exit status when the command ended by itself
    signal: str = ""  # killed by this signal (the wrapper usually turns it into 128+N)
    timed_out: bool = False
    stopped: bool = False  # cancel or shutdown
    lost: str = ""  # the connection dropped: why
    orphaned: str = ""  # the remote process group could not be killed: why


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


async def _pump(reader: asyncssh.SSHReader[bytes], log_path: Path) -> None:
    """Copy the channel's output (stdout + stderr) to the log until EOF or a drop."""
    log = await asyncio.to_thread(_open_log, log_path)
    try:
        while chunk := await reader.read(READ_BYTES):
            await asyncio.to_thread(log.write, chunk)
    except (asyncssh.Error, OSError) as e:
        logger.debug("output stream ended: %s", e)
    finally:
        await asyncio.to_thread(log.close)


async def _signal_group(session: HostSession, pgid_file: str, sig: str) -> bool:
    r = await session.run(kill_command(pgid_file, sig))
    return r.exit_status == 0


async def _group_alive(session: HostSession, pgid_file: str) -> bool:
    r = await session.run(alive_command(pgid_file))
    return r.exit_status == 0


async def _wait_gone(session: HostSession, pgid_file: str, grace_s: float,
                     done: asyncio.Future[object] | None) -> None:
    """Until the group has no process left (or grace_s passed)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if done is not None and done.done():
            return
        if not await _group_alive(session, pgid_file):
            return
        await asyncio.sleep(0.1)


async def kill_remote(
    session: HostSession, pgid_file: str, grace_s: float, done: asyncio.Future[object] | None
) -> None:
    """TERM the task's group, wait up to grace_s, KILL what is left."""
    deadline = time.monotonic() + PGID_WAIT_S
    while not await _signal_group(session, pgid_file, "TERM"):
        if (done is not None and done.done()) or time.monotonic() > deadline:
            break  # it ended by itself, or it never recorded a group
        await asyncio.sleep(0.05)
    await _wait_gone(session, pgid_file, grace_s, done)
    await _signal_group(session, pgid_file, "KILL")


async def _after_drop(session: HostSession, broken: asyncssh.SSHClientConnection,
                      pgid_file: str, grace_s: float, why: str) -> RemoteExit:
    """The connection dropped: reconnect and kill the task, so a retry never runs twice."""
    try:
        await session.reconnect(broken)
        await kill_remote(session, pgid_file, grace_s, None)
        if await _group_alive(session, pgid_file):
            return RemoteExit(lost=why, orphaned="it survived SIGKILL")
    except (OSError, asyncssh.Error, TimeoutError) as e:
        return RemoteExit(lost=why, orphaned=f"{type(e).__name__}: {e}")
    return RemoteExit(lost=why)


async def run_remote(
    session: HostSession, command: str, *, log_path: Path, pgid_file: str,
    timeout_s: float | None, stop: asyncio.Event, grace_s: float,
) -> RemoteExit:
    conn = await session.open()
    try:
        process = await conn.create_process(
            command, stdin=asyncssh.DEVNULL, stderr=asyncssh.STDOUT, encoding=None
        )
    except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError) as e:
        if conn.is_closed():
            return RemoteExit(lost=f"{type(e).__name__}: {e}")  # nothing ran: no cleanup
        raise
    pump = asyncio.ensure_future(_pump(process.stdout, log_path))
    waiter: asyncio.Future[object] = asyncio.ensure_future(process.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            stopped = stopper in done
            await kill_remote(session, pgid_file, grace_s, waiter)
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(asyncio.shield(waiter), grace_s + 5)
            return RemoteExit(timed_out=not stopped, stopped=stopped)
        return await _ended(session, conn, waiter, pgid_file, grace_s)
    finally:
        stopper.cancel()
        if not waiter.done():
            waiter.cancel()
        process.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _ended(session: HostSession, conn: asyncssh.SSHClientConnection,
                 waiter: asyncio.Future[object], pgid_file: str, grace_s: float) -> RemoteExit:
    try:
        result = waiter.result()
    except (asyncssh.Error, OSError) as e:
        return await _after_drop(session, conn, pgid_file, grace_s, f"{type(e).__name__}: {e}")
    assert isinstance(result, asyncssh.SSHCompletedProcess)
    if result.exit_status is None or (result.exit_status == -1 and not result.exit_signal):
        why = "the connection closed before the command's exit status arrived"
        return await _after_drop(session, conn, pgid_file, grace_s, why)
    if result.exit_signal:
        return RemoteExit(signal=result.exit_signal[0])
    return RemoteExit(status=result.exit_status)
