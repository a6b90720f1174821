"""Pure: the command lines the ssh executor sends to a remote host (POSIX sh assumed there).

Every value is shell-quoted (shlex.quote), so the remote shell sees each argument, variable
and path as one literal word. The task runs in a new session (`setsid -w`): its process
group id, written to a file in the attempt's remote directory, is what a cancel, a timeout
or a lost connection kills (TERM, then KILL: kill_command). The wrapper shell waits
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
# In the new session: record the group id, run the task, remove the record when it ends
# (so a late kill never hits a reused id), exit 128+N if a signal ends it.
WRAPPER = (
    'f=$1; shift; trap \'rm -f "$f"; exit 129\' HUP; trap \'rm -f "$f"; exit 130\' INT; '
    'trap \'rm -f "$f"; exit 143\' TERM; echo $$ > "$f"; "$@"; s=$?; rm -f "$f"; exit $s'
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


KILLED, NO_GROUP, SURVIVED = 0, 3, 4  # exit statuses of kill_command's script
# Is a process of the task's session (its id is the group's) alive? Zombies do not count: an
# orphan killed with its parent may wait for an init that reaps late (or never, in some
# containers). Without ps, kill -0 (which counts zombies) is the fallback.
ALIVE_FUNCTION = (
    "alive() { if command -v ps >/dev/null 2>&1; then "
    "ps -o stat= -s \"$p\" 2>/dev/null | grep -q '^[^Z]'; "
    "else kill -0 \"-$p\" 2>/dev/null; fi; }"
)


def kill_command(pgid_file: str, grace_s: float, wait_pgid_s: float = 2.0) -> str:
    """One remote script: wait for the group id (a task that is just starting), TERM the
    group, wait up to grace_s for it to go, KILL what is left, check it is gone.

    Exits KILLED (0: gone, or nothing was left), NO_GROUP (3: no group was ever recorded) or
    SURVIVED (4). `kill -SIG -PGID` without `--`: dash's kill does not take `--`.
    One channel for the whole sequence: each exec starts the user's login shell, which
    may be slow (rc files), so the executor never polls with separate commands.
    """
    ticks, pgid_ticks = max(0, round(grace_s * 10)), max(0, round(wait_pgid_s * 10))
    return "; ".join([
        f"f={q(pgid_file)}; i=0",
        f'while [ ! -s "$f" ] && [ $i -lt {pgid_ticks} ]; do sleep 0.1; i=$((i+1)); done',
        f'p=$(cat -- "$f" 2>/dev/null); [ -n "$p" ] || exit {NO_GROUP}',
        ALIVE_FUNCTION,
        f'kill -TERM "-$p" 2>/dev/null || exit {KILLED}',
        "i=0",
        f"while [ $i -lt {ticks} ] && alive; do sleep 0.1; i=$((i+1)); done",
        'kill -KILL "-$p" 2>/dev/null; i=0',
        "while [ $i -lt 20 ] && alive; do sleep 0.1; i=$((i+1)); done",
        f"alive && exit {SURVIVED}; exit {KILLED}",
    ])
