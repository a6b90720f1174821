"""The SSH inventory: the hosts ssh tasks may name (`host` in a node), read from one file.

TOML, JSON or YAML (by extension), a mapping of host name → entry:

    [cluster-a]                      # TOML; JSON / YAML have the same shape
    host = "login.example.org"       # address (default: the name itself)
    port = 22
    user = "alice"                   # default: the worker's user
    key_file = "~/.ssh/id_ed25519"   # or key_files = [...]; default: ssh-agent / ~/.ssh keys
    known_hosts = "~/.ssh/known_hosts"   # default: ~/.ssh/known_hosts; never unchecked
    workdir = ".dagbroker/work"      # remote base of per-attempt directories (relative: $HOME)
    max_sessions = 8                 # tasks run at once over the host's one connection
    connect_timeout_s = 15
    keepalive_interval_s = 15        # a silent network is declared dead after 3 missed replies

A task names the entry, never an address: a workflow cannot send commands anywhere else.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml  # type: ignore[import-untyped]
from msgspec import Meta

HostName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$")]


class InventoryError(ValueError):
    """The inventory file cannot be read or has an invalid entry."""


class SshHost(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = ""
    port: Annotated[int, Meta(ge=1, le=65535)] = 22
    user: str | None = None
    key_file: str | None = None
    key_files: list[str] = []
    known_hosts: str | None = None
    workdir: str = ".dagbroker/work"
    max_sessions: Annotated[int, Meta(ge=1, le=256)] = 8
    connect_timeout_s: Annotated[float, Meta(gt=0)] = 15.0
    keepalive_interval_s: Annotated[float, Meta(ge=0)] = 15.0
    keep_workdir: bool = False  # leave the remote attempt directory in place (debugging)

    def keys(self) -> list[str]:
        files = [self.key_file] if self.key_file else []
        return [os.path.expanduser(f) for f in [*files, *self.key_files]]


Inventory = dict[str, SshHost]
_decode = msgspec.convert


def _load_text(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text) or {}
    raise InventoryError(f"{path}: unknown inventory format (use .toml, .json, .yaml or .yml)")


def parse_inventory(data: Any, source: str = "inventory") -> Inventory:
    """A decoded document → {name: SshHost}; the address defaults to the name."""
    if not isinstance(data, dict):
        raise InventoryError(f"{source}: expected a mapping of host name → entry")
    out: Inventory = {}
    for name, entry in data.items():
        try:
            host = _decode(entry, SshHost)
            _decode(name, HostName)
        except msgspec.ValidationError as e:
            raise InventoryError(f"{source}: host {name!r}: {e}") from e
        out[name] = host if host.host else msgspec.structs.replace(host, host=name)
    return out


def load_inventory(path: str | Path) -> Inventory:
    """Read and check an inventory file (blocking: call at startup or in a thread)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as e:
        raise InventoryError(f"cannot read SSH inventory {p}: {e.strerror or e}") from e
    try:
        data = _load_text(p, text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise InventoryError(f"{p}: {e}") from e
    return parse_inventory(data, str(p))
