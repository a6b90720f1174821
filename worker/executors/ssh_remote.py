"""Pure: the command lines the ssh executor sends to a remote host (POSIX sh assumed there).

Every value is shell-quoted (shlex.quote), so the remote shell sees each argument, variable
and path as one literal word. The task runs in a new session (`setsid -w`): its process
group id, written to a file in the attempt's remote directory, is what a cancel, a timeout
or a lost connection kills (`kill -TERM -PGID`, then `-KILL`). The wrapper shell waits
for the task and turns a signal death into exit code 128+N, as a shell would.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from worker.executors.paths import safe_part

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PGID_FILE = ".dagb-pgid"
INPUTS_FILE = ".dagb-inputs.json"
RESULT_FILE = ".dagb-result.json"
# In the new session: record the group id, run the task, exit 128+N if a signal ends it.
WRAPPER = (
    "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; "
    'echo $$ > "$1"; shift; "$@"'
)


class RemoteCommandError(ValueError):
    """The task cannot be turned into a remote command line (reported as its reason)."""


def q(text: str) -> str:
    return shlex.quote(text)


def remote_dir(base: str, run: str, node: str, attempt: int) -> str:
    """The attempt's remote directory; relative paths are relative to the remote $HOME."""
    return f"{base.rstrip('/') or '.'}/{safe_part(run)}/{safe_part(node)}.{attempt}"


def run_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: str, pgid_file: str
) -> str:
    """cd, export, then the task in its own session, its group id written to pgid_file."""
    if not argv:
        raise RemoteCommandError("nothing to run: the command is empty")
    parts = [f"cd -- {q(cwd)}"]
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise RemoteCommandError(f"invalid environment variable name {name!r}")
        parts.append(f"export {name}={q(value)}")
    words = ["exec", "setsid", "-w", "/bin/sh", "-c", q(WRAPPER), "dagb-task", q(pgid_file)]
    parts.append(" ".join(words + [q(a) for a in argv]))
    return " && ".join(parts)


def kill_command(pgid_file: str, sig: str) -> str:
    """Signal ('TERM', 'KILL', '0') the task's process group; exit 0 only if it existed.

    `kill -SIG -PGID` without `--`: dash's kill does not take `--`."""
    return (f"p=$(cat -- {q(pgid_file)} 2>/dev/null) && [ -n \"$p\" ] && "
            f"kill -{sig} \"-$p\" 2>/dev/null")


def alive_command(pgid_file: str) -> str:
    """Exit 0 while any process of the task's group is alive."""
    return kill_command(pgid_file, "0")


def cleanup_command(path: str) -> str:
    return f"rm -rf -- {q(path)}"
