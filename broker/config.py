"""Broker settings: one frozen Struct per process, built at the edge (CLI / env) and passed down."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from broker.keys import DEFAULT_PREFIX

DEFAULT_PORT = 8250


def default_home() -> Path:
    """Data directory: $DAGBROKER_HOME, else ~/.dagbroker."""
    return Path(os.environ.get("DAGBROKER_HOME") or Path.home() / ".dagbroker")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a broker process needs to know. Intervals carry their unit in the name."""

    data_dir: str
    redis_url: str | None = None  # None: start the embedded redis-server in data_dir
    prefix: str = DEFAULT_PREFIX
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    broker_id: str = ""
    # limits
    max_body_bytes: int = 10 * 1024 * 1024
    max_tasks: int = 200_000
    fetch_timeout_s: float = 30.0  # publish by URL: the whole GET of the document
    expand_chunk: int = 2000
    events_maxlen: int = 100_000
    # reliability
    max_lost: int = 3  # a task lost with its worker this many times fails (worker_lost)
    # a dispatched entry idle this long (no lease renewal) is reclaimed; longer than the
    # workers' heartbeat TTL (30 s by default), which is what a cut-off worker fences against
    lease_ms: int = 60_000
    broker_claim_idle_ms: int = (
        10_000  # a completion pending this long on a dead broker is taken over
    )
    expand_timeout_s: float = 300.0  # an expansion older than this was interrupted
    retention_s: float = 7 * 86400  # finished runs expire from Redis after this
    # loop intervals
    tick_s: float = 0.25  # dispatcher/promoter fallback tick
    runner_scan_s: float = 0.5  # capacity + dead-runner check
    done_block_ms: int = 1000
    appendfsync: str = "everysec"
    policy_file: str | None = None  # deployment policy (broker/policy.py)
    artifacts_url: str | None = None  # the store workers upload to; default {data_dir}/artifacts
    s3_endpoint_url: str | None = None  # S3-compatible endpoint of an s3:// store
    aws_region: str | None = None  # region of an s3:// store (None: the AWS chain)
    nodeworks_plugins: list[str] = []  # modules adding Nodeworks node types (workers need them too)
    log_json: bool = False
    # health and TLS (docs/operations.md)
    health_stale_s: float = 10.0  # unready when a loop had no good iteration for this + 3 ticks
    tls_cert: str | None = None  # PEM certificate chain: serve HTTPS (and WSS)
    tls_key: str | None = None  # its private key (PEM)
    client_ca: str | None = None  # PEM CA bundle: require client certificates it signed (mTLS)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def settings_from_env(**overrides: object) -> Settings:
    """Settings from DAGBROKER_* environment variables, then explicit overrides (CLI flags)."""
    env = os.environ
    base: dict[str, object] = {
        "data_dir": str(default_home()),
        "redis_url": env.get("DAGBROKER_REDIS_URL") or None,
        "prefix": env.get("DAGBROKER_PREFIX", DEFAULT_PREFIX),
    }
    if env.get("DAGBROKER_PORT"):
        base["port"] = int(env["DAGBROKER_PORT"])
    for key, var in (("artifacts_url", "DAGBROKER_ARTIFACTS"),
                     ("s3_endpoint_url", "DAGBROKER_S3_ENDPOINT_URL"),
                     ("aws_region", "DAGBROKER_AWS_REGION")):
        if env.get(var):
            base[key] = env[var]
    base.update({k: v for k, v in overrides.items() if v is not None})
    return msgspec.convert(base, Settings)
