"""WorkerSettings: one frozen Struct per worker process, built at the edge and passed down."""

from __future__ import annotations

import os
import re
import secrets
import socket

import msgspec

from broker.keys import DEFAULT_PREFIX
from broker.wire import SOFTWARE_PATTERN
from worker.hostres import host_cores, host_gpus, host_memory_mb

CLASS_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # as spec.Resources.class_
SOFTWARE = re.compile(SOFTWARE_PATTERN)  # NAME or NAME=VERSION, no spaces or commas


def default_runner_id() -> str:
    """`{hostname}-{pid}-{4 random hex}`: unique per process, readable in `redis-cli`."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def check_software(software: list[str]) -> None:
    """Each entry is NAME or NAME=VERSION: no spaces or commas, at most 100 characters each."""
    for item in software:
        if not SOFTWARE.match(item):
            raise ValueError(f"invalid software {item!r} (NAME or NAME=VERSION, no spaces or "
                             "commas, at most 100 characters each)")


def check_resources(cores: float, memory_mb: int, gpus: int) -> None:
    """A runner offers a positive number of cores (fractions allowed) and MiB; GPUs may be 0."""
    if not 0 < cores <= 1_000_000:
        raise ValueError(f"cores must be positive, got {cores}")
    if memory_mb < 1:
        raise ValueError(f"memory must be at least 1 MiB, got {memory_mb}")
    if gpus < 0:
        raise ValueError(f"gpus cannot be negative, got {gpus}")


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker process needs. Intervals carry their unit in the name."""

    redis_url: str
    prefix: str = DEFAULT_PREFIX
    runner_id: str = msgspec.field(default_factory=default_runner_id)
    classes: list[str] = msgspec.field(default_factory=lambda: ["cpu"])
    slots: int = 1
    # resources this runner offers (tasks start only while their needs fit what is free);
    # defaults read the host once, here at construction: CPUs, MemTotal, /dev/nvidia[0-9]*
    cores: float = msgspec.field(default_factory=host_cores)
    memory_mb: int = msgspec.field(default_factory=host_memory_mb)
    gpus: int = msgspec.field(default_factory=host_gpus)
    data_dir: str = "."  # logs go to {data_dir}/logs/{run}/{node}/attempt-{n}.log
    labels: dict[str, str] = {}
    software: list[str] = []  # advertised as the runner hash's `software` (NAME or NAME=VERSION)
    heartbeat_interval_s: float = 2.0
    heartbeat_ttl_s: float = 30.0  # dead after this; a cut-off worker fences before (fencing.py)
    block_ms: int = 1000
    batch_max: int = 0  # tasks per executor call at most: 0 no limit, 1 no batching
    grace_period_s: float = 30.0
    kill_grace_s: float = 5.0
    log_json: bool = False
    # artifacts: "" → {data_dir}/artifacts; else file:///dir or s3://bucket/prefix
    artifacts_url: str = ""
    s3_endpoint_url: str = ""  # S3-compatible endpoint (MinIO, moto); "" → AWS
    # aws_batch executor (enabled when a job queue is given); "" → the AWS default chain
    aws_region: str = ""
    aws_endpoint_url: str = ""  # endpoint for Batch (and S3 unless s3_endpoint_url is set)
    aws_batch_queue: str = ""
    aws_batch_job_role: str = ""  # ARN of the IAM role the containers run as
    # slurm executor (offered where sbatch is on PATH); a task's labels partition/account win
    slurm_partition: str = ""
    slurm_account: str = ""
    slurm_poll_interval_s: float = 2.0  # squeue per job array, and log tailing
    # ssh executor (offered where asyncssh is installed): the inventory of hosts tasks may name
    ssh_inventory: str = ""  # TOML, JSON or YAML file: host name → host, port, user, key, …

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"slots must be at least 1, got {self.slots}")
        check_resources(self.cores, self.memory_mb, self.gpus)
        check_software(self.software)
        if not self.classes:
            raise ValueError("a worker needs at least one resource class")
        for c in self.classes:
            if not CLASS_PATTERN.match(c):
                raise ValueError(f"invalid resource class {c!r} (lowercase letters, digits, _ -)")
        if not self.runner_id or any(ch in self.runner_id for ch in " :,"):
            raise ValueError(f"invalid runner id {self.runner_id!r} (no spaces, ':' or ',')")
        if self.heartbeat_interval_s <= 0 or self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_ttl_s must be greater than heartbeat_interval_s > 0")
        if self.slurm_poll_interval_s <= 0:
            raise ValueError("slurm_poll_interval_s must be positive")
        if self.block_ms < 1:
            raise ValueError("block_ms must be positive")
        if self.batch_max < 0:
            raise ValueError(f"batch_max cannot be negative, got {self.batch_max}")
        if self.grace_period_s < 0 or self.kill_grace_s < 0:
            raise ValueError("grace periods cannot be negative")
        scheme = self.artifacts_url.partition("://")[0] if "://" in self.artifacts_url else ""
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"--artifacts {self.artifacts_url!r}: use file:///path or "
                             "s3://bucket/prefix")
