"""`dagbroker runners deploy user@host [...] -- WORKER ARGS`: start a worker on another host.

Over SSH (asyncssh, host key checked), it runs `python3 -m worker WORKER ARGS` on the host in
the background (setsid + nohup, output to a log file there) and prints its pid. It copies
nothing: dagbroker must already be installed for that python on the host. After a short
wait it checks the process is still alive, and shows the log's end if it is not.

    dagbroker runners deploy alice@hpc1 -i ~/.ssh/id_ed25519 -- \\
        --redis-url redis://broker:6379/0 --classes cpu --slots 8

Entry points: `deploy_runner(...)` (async) and `deploy_main(argv)` (the CLI verb).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_LOG = ".dagbroker/runner.log"  # relative: the remote $HOME
CHECK_AFTER_S = 2.0
TAIL_LINES = 20


class DeployError(Exception):
    """The worker could not be started on the host (the message says why)."""


@dataclass(frozen=True)
class Target:
    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, text: str, port: int | None = None) -> Target:
        """'user@host', 'host', 'user@host:2222' (an explicit port argument wins)."""
        user, _, rest = text.rpartition("@")
        host, sep, port_text = rest.rpartition(":") if rest.count(":") == 1 else ("", "", "")
        if not sep:
            host = rest
        if not host:
            raise DeployError(f"invalid target {text!r}: expected [user@]host[:port]")
        if sep and not port_text.isdigit():
            raise DeployError(f"invalid port in {text!r}")
        return cls(host=host, user=user or None,
                   port=port if port is not None else int(port_text) if sep else 22)


def start_command(
    worker_args: Sequence[str], *, python: str = "python3", log_file: str = DEFAULT_LOG,
    env: Mapping[str, str] | None = None,
) -> str:
    """The remote shell command: detached worker, stdin closed, output to log_file; → pid."""
    words = ["env", *(f"{k}={v}" for k, v in (env or {}).items()), python, "-m", "worker",
             *worker_args]
    log = shlex.quote(log_file)
    command = " ".join(shlex.quote(w) for w in words)
    return (f'mkdir -p "$(dirname {log})" && '
            f"{{ setsid nohup {command} >> {log} 2>&1 < /dev/null & echo $!; }}")


def check_command(pid: int, log_file: str) -> str:
    """'alive', or 'dead' and the log's end. A zombie (an init that does not reap) is dead."""
    return (f"kill -0 {pid} 2>/dev/null && "
            f'case "$(ps -o stat= -p {pid} 2>/dev/null)" in Z*) false;; esac && echo alive || '
            f"{{ echo dead; tail -n {TAIL_LINES} {shlex.quote(log_file)}; }}")


def connect_options(
    target: Target, key_files: Sequence[str], known_hosts: str | None
) -> dict[str, object]:
    options: dict[str, object] = {
        "port": target.port,
        "known_hosts": os.path.expanduser(known_hosts) if known_hosts else (),
    }
    if target.user:
        options["username"] = target.user
    if key_files:
        options["client_keys"] = [os.path.expanduser(k) for k in key_files]
    return options


async def deploy_runner(
    target: Target, worker_args: Sequence[str], *, key_files: Sequence[str] = (),
    known_hosts: str | None = None, python: str = "python3", log_file: str = DEFAULT_LOG,
    env: Mapping[str, str] | None = None, check_after_s: float = CHECK_AFTER_S,
) -> int:
    """Start the worker; → its pid on the host. DeployError if it did not start or died."""
    import asyncssh  # only the deploy verb needs it

    options = connect_options(target, key_files, known_hosts)
    try:
        async with asyncssh.connect(target.host, **options) as conn:
            r = await conn.run(start_command(worker_args, python=python, log_file=log_file,
                                             env=env), check=False)
            out = str(r.stdout or "").strip()
            if r.exit_status != 0 or not out.isdigit():
                raise DeployError(f"could not start the worker (exit {r.exit_status}): "
                                  f"{str(r.stderr or '').strip() or out}")
            pid = int(out)
            if check_after_s > 0:
                await asyncio.sleep(check_after_s)
                c = await conn.run(check_command(pid, log_file), check=False)
                text = str(c.stdout or "")
                if not text.startswith("alive"):
                    raise DeployError(f"the worker (pid {pid}) exited; the end of its log "
                                      f"{log_file}:\n{text.removeprefix('dead').strip()}")
            return pid
    except (OSError, asyncssh.Error) as e:
        raise DeployError(f"ssh to {target.host}:{target.port}: {e}") from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dagbroker runners deploy",
        description="Start a worker on another host over SSH (dagbroker must be installed "
                    "there). Arguments after -- go to `python3 -m worker` on that host.",
    )
    p.add_argument("target", help="[user@]host[:port]")
    p.add_argument("-p", "--port", type=int, default=None, help="SSH port (default 22)")
    p.add_argument("-i", "--identity", action="append", default=[], metavar="KEY_FILE",
                   help="private key file (repeatable; default: ssh-agent and ~/.ssh keys)")
    p.add_argument("--known-hosts", default=None, metavar="PATH",
                   help="known_hosts file for the host key (default ~/.ssh/known_hosts)")
    p.add_argument("--python", default="python3", help="python on the host (default python3)")
    p.add_argument("--log-file", default=DEFAULT_LOG,
                   help="the worker's log on the host (default ~/%(default)s)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="environment variable for the worker (repeatable)")
    p.add_argument("worker_args", nargs=argparse.REMAINDER,
                   help="-- then the worker's arguments (--redis-url, --classes, --slots, ...)")
    return p


def deploy_main(argv: Sequence[str] | None = None) -> int:
    """The CLI verb. → exit code (0 started, 1 failed, 2 usage)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    worker_args = a.worker_args[1:] if a.worker_args[:1] == ["--"] else a.worker_args
    env: dict[str, str] = {}
    for item in a.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env expects K=V, got {item!r}")
        env[key] = value
    try:
        target = Target.parse(a.target, a.port)
        pid = asyncio.run(deploy_runner(
            target, worker_args, key_files=a.identity, known_hosts=a.known_hosts,
            python=a.python, log_file=a.log_file, env=env,
        ))
    except DeployError as e:
        print(f"dagbroker runners deploy: {e}", file=sys.stderr)
        return 1
    where = a.log_file if a.log_file.startswith("/") else f"~/{a.log_file}"
    print(f"worker started on {target.host}: pid {pid}, log {where}")
    return 0
