"""Command line of `dagbroker worker` → WorkerSettings. The only reader of the environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from broker.core.units import memory_mb
from broker.keys import DEFAULT_PREFIX
from worker.config import WorkerSettings
from worker.executors.ssh_inventory import InventoryError, load_inventory


def default_data_dir(environ: Mapping[str, str]) -> str:
    """$DAGBROKER_HOME, else ~/.dagbroker (the broker's default too)."""
    return environ.get("DAGBROKER_HOME") or str(Path.home() / ".dagbroker")


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def software_list(given: list[str] | None, environ: Mapping[str, str]) -> list[str]:
    """The --software flags given, else $DAGBROKER_SOFTWARE split at commas (each once)."""
    if given is None:
        given = [s for s in environ.get("DAGBROKER_SOFTWARE", "").split(",") if s.strip()]
    return list(dict.fromkeys(s.strip() for s in given))


def heartbeat_interval_s(given: float | None, ttl_s: float) -> float:
    """The interval asked for, else 2 s but at least three beats per TTL."""
    return given if given is not None else min(2.0, ttl_s / 3)


def _add_artifact_args(p: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Artifact store and AWS settings (a flag wins over its environment variable)."""
    env = environ.get
    p.add_argument("--artifacts", default=env("DAGBROKER_ARTIFACTS", ""), metavar="URL",
                   help="artifact store: file:///dir or s3://bucket/prefix "
                        "(default DATA_DIR/artifacts; env DAGBROKER_ARTIFACTS)")
    p.add_argument("--s3-endpoint-url", default=env("DAGBROKER_S3_ENDPOINT_URL", ""),
                   metavar="URL", help="S3-compatible endpoint for an s3:// store")
    p.add_argument("--aws-region", default=env("DAGBROKER_AWS_REGION", ""),
                   help="AWS region (default: the AWS configuration chain)")
    p.add_argument("--aws-endpoint-url", default=env("DAGBROKER_AWS_ENDPOINT_URL", ""),
                   metavar="URL", help="endpoint for AWS Batch (and S3 unless --s3-endpoint-url)")
    p.add_argument("--aws-batch-queue", default=env("DAGBROKER_AWS_BATCH_QUEUE", ""),
                   metavar="QUEUE", help="AWS Batch job queue; enables the aws_batch executor")
    p.add_argument("--aws-batch-job-role", default=env("DAGBROKER_AWS_BATCH_JOB_ROLE", ""),
                   metavar="ARN", help="IAM role ARN the aws_batch containers run as")


def _add_hpc_args(p: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """SLURM defaults and the SSH inventory (a flag wins over its environment variable)."""
    env = environ.get
    p.add_argument("--slurm-partition", default=env("DAGBROKER_SLURM_PARTITION", ""),
                   metavar="NAME", help="default SLURM partition (a task's label 'partition' wins)")
    p.add_argument("--slurm-account", default=env("DAGBROKER_SLURM_ACCOUNT", ""),
                   metavar="NAME", help="default SLURM account (a task's label 'account' wins)")
    p.add_argument("--slurm-poll-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often squeue is asked about running SLURM jobs")
    p.add_argument("--ssh-inventory", default=env("DAGBROKER_SSH_INVENTORY", ""), metavar="PATH",
                   help="hosts for the ssh executor: TOML, JSON or YAML, name → host, port, user, "
                        "key_file, known_hosts (env DAGBROKER_SSH_INVENTORY)")


def _memory(text: str) -> int:
    try:
        mb = memory_mb(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return mb or 0  # 0 is refused by WorkerSettings with a clear message


def _add_resource_args(p: argparse.ArgumentParser) -> None:
    """What this runner offers; a flag not given leaves the host's value (worker/hostres.py)."""
    p.add_argument("--cores", type=float, default=None,
                   help="cores tasks may use at once, fractions allowed (default: CPUs available)")
    p.add_argument("--memory", type=_memory, default=None, metavar="SIZE",
                   help="memory tasks may use at once: MiB, or e.g. 512M, 4G (default: MemTotal)")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs tasks may use at once (default: count of /dev/nvidia[0-9]*)")


def resource_settings(a: argparse.Namespace) -> dict[str, Any]:
    """Only the resource flags given: the others keep WorkerSettings' host defaults."""
    given = {"cores": a.cores, "memory_mb": a.memory, "gpus": a.gpus}
    return {k: v for k, v in given.items() if v is not None}


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dagbroker worker", description="Run tasks of the given resource classes."
    )
    url = environ.get("DAGBROKER_REDIS_URL")
    p.add_argument("--redis-url", default=url, required=url is None,
                   help="Redis URL (env DAGBROKER_REDIS_URL)")
    p.add_argument("--prefix", default=environ.get("DAGBROKER_PREFIX", DEFAULT_PREFIX),
                   help="key prefix (default %(default)s)")
    p.add_argument("--classes", default="cpu", help="comma-separated resource classes")
    p.add_argument("--slots", type=int, default=os.cpu_count() or 1,
                   help="tasks run at once (default: CPU count)")
    _add_resource_args(p)
    p.add_argument("--id", dest="runner_id", default=None, help="runner id (default host-pid-rand)")
    p.add_argument("--data-dir", default=default_data_dir(environ),
                   help="task logs go under DATA_DIR/logs (env DAGBROKER_HOME)")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="K=V",
                   help="label advertised to the broker (repeatable)")
    p.add_argument("--software", action="append", default=None, metavar="NAME[=VERSION]",
                   help="software this runner offers, advertised to the broker (repeatable; "
                        "env DAGBROKER_SOFTWARE, comma-separated, used when none is given)")
    p.add_argument("--heartbeat-interval", type=float, default=None, metavar="SECONDS",
                   help="default: 2, or a third of --heartbeat-ttl if that is shorter")
    p.add_argument("--heartbeat-ttl", type=float, default=30.0, metavar="SECONDS",
                   help="the runner is dead (its tasks reclaimed) after this long without a "
                   "heartbeat; cut off from Redis, it stops its own tasks before then (default 30)")
    p.add_argument("--grace-period", type=float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/drain, time running tasks get to finish")
    p.add_argument("--kill-grace", type=float, default=5.0, metavar="SECONDS",
                   help="between SIGTERM and SIGKILL of a task's process group")
    p.add_argument("--batch-max", type=int, default=0, metavar="N",
                   help="at most N tasks per batch (one executor call); 0: no limit "
                        "(default), 1: no batching")
    _add_artifact_args(p, environ)
    _add_hpc_args(p, environ)
    p.add_argument("--block-ms", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def parse_settings(
    argv: Sequence[str] | None, environ: Mapping[str, str]
) -> tuple[WorkerSettings, bool]:
    """→ (settings, verbose). Exits with a usage message on bad arguments."""
    parser = build_parser(environ)
    a = parser.parse_args(argv)
    extra: dict[str, Any] = {"runner_id": a.runner_id} if a.runner_id else {}
    extra |= resource_settings(a)
    try:
        settings = WorkerSettings(
            redis_url=a.redis_url, prefix=a.prefix,
            classes=[c.strip() for c in a.classes.split(",") if c.strip()],
            slots=a.slots, batch_max=a.batch_max, data_dir=a.data_dir, labels=dict(a.label),
            software=software_list(a.software, environ),
            heartbeat_interval_s=heartbeat_interval_s(a.heartbeat_interval, a.heartbeat_ttl),
            heartbeat_ttl_s=a.heartbeat_ttl,
            block_ms=a.block_ms, grace_period_s=a.grace_period, kill_grace_s=a.kill_grace,
            log_json=a.log_json, artifacts_url=a.artifacts, s3_endpoint_url=a.s3_endpoint_url,
            aws_region=a.aws_region, aws_endpoint_url=a.aws_endpoint_url,
            aws_batch_queue=a.aws_batch_queue, aws_batch_job_role=a.aws_batch_job_role,
            slurm_partition=a.slurm_partition, slurm_account=a.slurm_account,
            slurm_poll_interval_s=a.slurm_poll_interval, ssh_inventory=a.ssh_inventory, **extra,
        )
    except ValueError as e:
        parser.error(str(e))
    if settings.ssh_inventory:
        try:
            load_inventory(settings.ssh_inventory)  # fail now, not at the first ssh task
        except InventoryError as e:
            parser.error(str(e))
    return settings, bool(a.verbose)
