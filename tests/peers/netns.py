"""A private network namespace joined to the host by a veth pair: "another host" for e2e tests.

`network_namespace()` creates a uniquely named namespace, a veth pair with one end moved into
it, and a /30 from 10.213.0.0/16 that nothing else on the host uses (`.1` on the host end,
`.2` inside), brings up `lo` in the namespace, and always tears everything down, even when
setup or the test fails. A process started with `ns.exec_argv(...)` can reach the host only
at `ns.host_ip` over the link: the namespace's own 127.0.0.1 is empty. (Path-based unix
sockets are filesystem objects and stay reachable across namespaces: give such a process
TCP addresses only.)

Needs root and `ip` (iproute2, from scripts/install-peers). When a namespace cannot be made,
the fixture fails in CI and skips elsewhere, like the other peers. Namespaces left behind by
a test process that was killed (its pid is in the name) are removed by the next one.

    from peers.netns import NetNs, netns  # noqa: F401
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.embedded_redis import pid_alive
from peers.fixtures import unavailable

NS_PREFIX = "dagbt-"  # dagbt-{pid}-{hex}: the pid of the test process that owns it
SUBNET = "10.213"  # 10.213.X.0/30 for X in 0..255
LOCK_FILE = Path("/run/lock/dagbroker-netns.lock")  # serialises picking X between test runs
IP_TIMEOUT_S = 30


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its stdout (raises RuntimeError with its stderr on failure)."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


@dataclass(frozen=True)
class NetNs:
    name: str  # as in `ip netns list`
    host_if: str  # veth end on the host, holds host_ip
    ns_if: str  # veth end inside the namespace, holds ns_ip
    host_ip: str  # 10.213.X.1
    ns_ip: str  # 10.213.X.2

    def exec_argv(self, *argv: str) -> list[str]:
        """`argv` run inside the namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace to completion (never raises on its exit code)."""
        return subprocess.run(self.exec_argv(*argv), capture_output=True, text=True,
                              timeout=IP_TIMEOUT_S)

    def inode(self) -> int:
        """The namespace's identity: what `readlink /proc/PID/ns/net` shows as net:[INODE]."""
        return os.stat(f"/run/netns/{self.name}").st_ino

    def link_down(self) -> None:
        """Cut the link (host end down: the namespace loses its carrier)."""
        ip("link", "set", self.host_if, "down")

    def link_up(self) -> None:
        ip("link", "set", self.host_if, "up")


def net_inode(pid: int | str = "self") -> int:
    """The network namespace inode of a process (`readlink /proc/PID/ns/net` → net:[INODE])."""
    link = os.readlink(f"/proc/{pid}/ns/net")
    m = re.fullmatch(r"net:\[(\d+)\]", link)
    if not m:
        raise ValueError(f"unexpected /proc/{pid}/ns/net link: {link!r}")
    return int(m.group(1))


def remove_stale() -> None:
    """Delete namespaces whose owning test process is gone (their veth pairs go with them)."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"{NS_PREFIX}(\d+)-[0-9a-f]+", name)
        if m and not pid_alive(int(m.group(1))):
            ip("netns", "del", name, check=False)


def _free_third_octet() -> int:
    """An X such that no host address or route is in 10.213.X.0/24 yet."""
    used_text = ip("-o", "-4", "addr", "show") + ip("-4", "route", "show", "table", "all")
    used = {int(x) for x in re.findall(rf"\b{re.escape(SUBNET)}\.(\d+)\.", used_text)}
    free = sorted(set(range(256)) - used)
    if not free:
        raise RuntimeError(f"every {SUBNET}.X.0/30 is in use on this host")
    return random.choice(free)


@contextlib.contextmanager
def _pick_lock() -> Iterator[None]:
    """Holds a host-wide lock while a test picks its subnet and assigns it."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _configure(ns: NetNs) -> None:
    ip("netns", "add", ns.name)
    ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
    ip("link", "set", ns.ns_if, "netns", ns.name)
    ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
    ip("link", "set", ns.host_if, "up")
    inside = ["netns", "exec", ns.name, "ip"]
    ip(*inside, "addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
    ip(*inside, "link", "set", ns.ns_if, "up")
    ip(*inside, "link", "set", "lo", "up")


def _teardown(ns: NetNs) -> None:
    """Remove whatever of `ns` exists; deleting the namespace destroys its veth pair."""
    ip("netns", "del", ns.name, check=False)
    if ip("link", "show", ns.host_if, check=False):  # setup stopped before the move
        ip("link", "del", ns.host_if, check=False)


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNs]:
    """A fresh namespace + veth pair + private /30 (see the module docstring)."""
    tag = uuid.uuid4().hex[:8]
    remove_stale()
    with _pick_lock():
        x = _free_third_octet()
        ns = NetNs(name=f"{NS_PREFIX}{os.getpid()}-{tag}", host_if=f"dbh{tag}",
                   ns_if=f"dbn{tag}", host_ip=f"{SUBNET}.{x}.1", ns_ip=f"{SUBNET}.{x}.2")
        try:
            _configure(ns)
        except BaseException:
            _teardown(ns)
            raise
    try:
        yield ns
    finally:
        _teardown(ns)


@pytest.fixture
def netns() -> Iterator[NetNs]:
    """A namespace for one test; fails in CI, skips elsewhere, when it cannot be made."""
    if shutil.which("ip") is None:
        unavailable("`ip` is not installed (iproute2)")
    if os.geteuid() != 0:
        unavailable("network namespaces need root")
    with contextlib.ExitStack() as stack:
        try:
            ns = stack.enter_context(network_namespace())
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            unavailable(f"cannot create a network namespace: {e}")
        yield ns


__all__ = ["NetNs", "net_inode", "netns", "network_namespace"]
