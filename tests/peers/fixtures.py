"""Real local peers for the executor tests: a single-node SLURM cluster and an OpenSSH server.

Both are started by the shell scripts beside this file (usable by hand too), each with its
own directory, keys and free ports, once per test session, and stopped at its end. The
packages come from `scripts/install-peers`. A peer that cannot start fails the test when the
CI environment variable is set, and skips it otherwise.

Test modules import the fixtures they use:

    from peers.fixtures import slurm_cluster, sshd  # noqa: F401
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/ (helpers)

from helpers import free_port  # noqa: E402

START_TIMEOUT_S = 60


def unavailable(what: str) -> None:
    """A peer cannot start: fail in CI (it must be there), skip elsewhere."""
    message = f"{what} (install with scripts/install-peers)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run_script(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        [str(HERE / script), *args], env=env, capture_output=True, text=True,
        timeout=START_TIMEOUT_S,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{script} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r.stdout


@dataclass(frozen=True)
class SlurmCluster:
    dir: Path
    conf: Path
    cgroup: bool  # memory enforced per job (OUT_OF_MEMORY works)
    env: dict[str, str] = field(default_factory=dict)  # os.environ + SLURM_CONF

    def run(self, *argv: str) -> str:
        """A SLURM client command against this cluster; its stdout (raises on failure)."""
        return subprocess.run(argv, env=self.env, check=True, capture_output=True,
                              text=True, timeout=60).stdout

    def job_ids(self) -> set[str]:
        """Every job (array) id the controller knows, finished ones included."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%F")
        return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    if not Path("/usr/sbin/slurmctld").exists() or shutil.which("sbatch") is None:
        unavailable("SLURM is not installed (slurmctld, slurmd, slurm-client, munge)")
    if os.geteuid() != 0:
        unavailable("the test SLURM cluster runs its daemons as root")
    d = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURMCTLD_PORT=str(free_port()), SLURMD_PORT=str(free_port()))
    try:
        out = _run_script("start-slurm.sh", str(d), env=env)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        _run_script("stop-slurm.sh", str(d))
        unavailable(f"cannot start a SLURM cluster: {e}")
    conf = d / "slurm.conf"
    cluster = SlurmCluster(d, conf, "cgroup: yes" in out, dict(os.environ, SLURM_CONF=str(conf)))
    try:
        yield cluster
    finally:
        _run_script("stop-slurm.sh", str(d))


@dataclass(frozen=True)
class SshServer:
    dir: Path
    port: int
    client_key: Path
    known_hosts: Path
    host: str = "127.0.0.1"
    user: str = field(default_factory=lambda: pwd.getpwuid(os.geteuid()).pw_name)  # root in CI

    @property
    def pid(self) -> int:
        return int((self.dir / "sshd.pid").read_text().strip())

    def session_pids(self) -> list[int]:
        """The sshd processes serving open connections (below the listener; not the
        commands they run)."""
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
            parents[int(proc.name)], names[int(proc.name)] = int(rest.split()[1]), name
        found: list[int] = []
        frontier = [self.pid]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and names[pid] == "sshd":
                    found.append(pid)
                    frontier.append(pid)
        return found

    def accepted(self) -> int:
        """How many connections have logged in so far (sshd's log)."""
        return (self.dir / "sshd.log").read_text().count("Accepted publickey")

    def inventory_entry(self, **extra: object) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "user": self.user,
                "key_file": str(self.client_key), "known_hosts": str(self.known_hosts), **extra}


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh-keygen") is None:
        unavailable("OpenSSH server is not installed (openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    port = free_port()
    try:
        _run_script("start-sshd.sh", str(d), str(port))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        _run_script("stop-sshd.sh", str(d))
        unavailable(f"cannot start sshd: {e}")
    try:
        yield SshServer(d, port, d / "client_ed25519", d / "known_hosts")
    finally:
        _run_script("stop-sshd.sh", str(d))


__all__ = ["SlurmCluster", "SshServer", "slurm_cluster", "sshd", "unavailable"]
