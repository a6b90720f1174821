"""The ssh executor's remote command lines, run by this machine's /bin/sh (dash on Debian),
as a remote login shell would run them; and the inventory file formats. No sshd needed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_worker_support import pid_alive

from worker.executors.ssh_inventory import InventoryError, load_inventory, parse_inventory
from worker.executors.ssh_remote import (
    KILLED,
    NO_GROUP,
    RemoteCommandError,
    kill_command,
    remote_dir,
    run_command,
)


def sh(command: str, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout_s)


def test_values_arrive_literally_and_codes_pass_through(tmp_path: Path) -> None:
    value = "a'\n$(touch pwned) `touch pwned`; \"$HOME\\ && touch pwned"
    pg = tmp_path / ".pgid"
    r = sh(run_command(["printf", "[%s][%s]", value, "$V"], {"V": value}, str(tmp_path), str(pg)))
    assert (r.returncode, r.stdout) == (0, f"[{value}][$V]")
    assert not (tmp_path / "pwned").exists() and not pg.exists()  # record removed at the end
    env_cmd = run_command(["/bin/sh", "-c", 'printf %s "$V"; exit 7'], {"V": value},
                          str(tmp_path), str(pg))
    r = sh(env_cmd)
    assert (r.returncode, r.stdout) == (7, value)
    r = sh(run_command(["/bin/sh", "-c", "kill -9 $$"], {}, str(tmp_path), str(pg)))
    assert r.returncode == 128 + 9  # a signal death reads as a shell's 128+N
    with pytest.raises(RemoteCommandError, match="invalid environment variable name"):
        run_command(["true"], {"A B": "x"}, "/", str(pg))
    assert remote_dir(".dagbroker/work/", "r/1", "sim[3]", 2) == ".dagbroker/work/r_1/sim_3_.2"


def test_kill_command_ends_the_whole_group(tmp_path: Path) -> None:
    pg, pidfile = tmp_path / ".pgid", tmp_path / "child.pid"
    task = run_command(["/bin/sh", "-c", f"trap '' TERM; sleep 60 & echo $! > {pidfile}; wait"],
                       {}, str(tmp_path), str(pg))
    proc = subprocess.Popen(["/bin/sh", "-c", task])
    try:
        r = sh(f"i=0; while [ ! -s {pidfile} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done")
        assert r.returncode == 0
        child = int(pidfile.read_text())
        r = sh(kill_command(str(pg), grace_s=0.3))  # TERM is ignored: KILL after the grace
        assert r.returncode == KILLED, r.stderr
        assert proc.wait(10) != 0
        assert not pid_alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = sh(kill_command(str(tmp_path / "never-started"), grace_s=0.1, wait_pgid_s=0.1))
    assert r.returncode == NO_GROUP


def test_inventory_formats(tmp_path: Path) -> None:
    entry = {"host": "10.0.0.5", "port": 2222, "user": "alice", "key_file": "~/.ssh/id",
             "known_hosts": "/etc/kh"}
    (tmp_path / "h.json").write_text(json.dumps({"a": entry, "b": {}}))
    (tmp_path / "h.yaml").write_text("a:\n  host: 10.0.0.5\n  port: 2222\nb: {}\n")
    (tmp_path / "h.toml").write_text('[a]\nhost = "10.0.0.5"\nport = 2222\n[b]\n')
    for name in ("h.json", "h.yaml", "h.toml"):
        inv = load_inventory(tmp_path / name)
        assert inv["a"].host == "10.0.0.5" and inv["a"].port == 2222
        assert inv["b"].host == "b" and inv["b"].port == 22  # the name is the address
    inv = load_inventory(tmp_path / "h.json")
    assert inv["a"].keys() == [os.path.expanduser("~/.ssh/id")]
    with pytest.raises(InventoryError, match="host 'a'"):
        parse_inventory({"a": {"hostname": "x"}})  # unknown field
    with pytest.raises(InventoryError, match="unknown inventory format"):
        (tmp_path / "h.ini").write_text("")
        load_inventory(tmp_path / "h.ini")
    with pytest.raises(InventoryError, match="cannot read SSH inventory"):
        load_inventory(tmp_path / "missing.toml")
