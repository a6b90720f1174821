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
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import asyncssh

from worker.executors.ssh_remote import KILLED, NO_GROUP, SURVIVED, kill_command

if TYPE_CHECKING:
    from pathlib import Path

    from worker.executors.ssh_session import HostSession

logger = logging.getLogger(__name__)

READ_BYTES = 65536


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
    return path.open("ab", buffering=0)  # unbuffered: the log shipper tails this file


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


async def kill_remote(session: HostSession, pgid_file: str, grace_s: float) -> str:
    """TERM the task's group, KILL it after grace_s. → '' when it is gone, else why not."""
    r = await session.run(kill_command(pgid_file, grace_s))
    if r.exit_status in (KILLED, NO_GROUP):
        return ""
    if r.exit_status == SURVIVED:
        return "it survived SIGKILL"
    return f"the kill command exited {r.exit_status}: {str(r.stderr or '').strip()}"


async def _after_drop(session: HostSession, broken: asyncssh.SSHClientConnection,
                      pgid_file: str, grace_s: float, why: str) -> RemoteExit:
    """The connection dropped: reconnect and kill the task, so a retry never runs twice."""
    try:
        await session.reconnect(broken)
        orphaned = await kill_remote(session, pgid_file, grace_s)
    except (OSError, asyncssh.Error, TimeoutError) as e:
        orphaned = f"{type(e).__name__}: {e}"
    return RemoteExit(lost=why, orphaned=orphaned)


async def _kill_stopped(session: HostSession, conn: asyncssh.SSHClientConnection,
                        pgid_file: str, grace_s: float) -> str:
    """kill_remote, over a new connection if this one dropped meanwhile. → '' or why not."""
    why = ""
    for attempt in range(2):
        try:
            if attempt:
                await session.reconnect(conn)
            return await kill_remote(session, pgid_file, grace_s)
        except (OSError, asyncssh.Error, TimeoutError) as e:
            why = f"{type(e).__name__}: {e}"
    return why


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
    waiter: asyncio.Future[Any] = asyncio.ensure_future(process.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            stopped = stopper in done
            orphaned = await _kill_stopped(session, conn, pgid_file, grace_s)
            if orphaned:
                logger.warning("%s: the stopped task's process group: %s", session.name, orphaned)
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(asyncio.shield(waiter), 5.0)
            return RemoteExit(timed_out=not stopped, stopped=stopped, orphaned=orphaned)
        return await _ended(session, conn, waiter, pgid_file, grace_s)
    finally:
        stopper.cancel()
        if not waiter.done():
            waiter.cancel()
        process.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _ended(session: HostSession, conn: asyncssh.SSHClientConnection,
                 waiter: asyncio.Future[Any], pgid_file: str, grace_s: float) -> RemoteExit:
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
