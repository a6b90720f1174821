"""A real moto server (S3, IAM, Batch) on a loopback port, for the artifact and aws_batch tests.

Started as its own process (`python -m moto.server`); clients reach it exactly as they reach
AWS, only `endpoint_url` differs. Batch runs in moto's no-Docker mode by default (jobs end
SUCCEEDED at submit time); `batch_mode(use_docker=True)` switches to the Docker mode, which
on a machine without a Docker daemon walks a job through its states to FAILED, and
`hold_jobs()` keeps jobs SUBMITTED so that cancel and timeout can be exercised.
A server that cannot start fails the test (it never skips).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

REGION = "us-east-1"  # other regions need a LocationConstraint for create_bucket


class MotoServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """aiobotocore create_client arguments: this endpoint, dummy credentials."""
        return {
            "endpoint_url": self.url, "region_name": REGION,
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        }

    def credentials(self) -> dict[str, str]:
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def start(self, timeout_s: float = 30.0) -> MotoServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "moto.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start:\n{self.log()}") from None
                time.sleep(0.05)
        self.batch_mode(use_docker=False)
        return self

    def log(self) -> str:
        path = self.workdir / "moto.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def api(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(f"{self.url}{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text.strip().startswith(b"{") else text

    def batch_mode(self, use_docker: bool) -> None:
        self.api("/moto-api/config", {"batch": {"use_docker": use_docker}})

    def hold_jobs(self) -> None:
        """Batch jobs stay SUBMITTED (only Docker mode moves them; this stops it)."""
        self.api("/moto-api/state-manager/set-transition", {
            "model_name": "batch::job",
            "transition": {"progression": "manual", "times": 10**9},
        })

    def reset(self) -> None:
        """Wipe every resource, back to no-Docker Batch with the default job transitions."""
        self.api("/moto-api/reset")
        self.api("/moto-api/state-manager/unset-transition", {"model_name": "batch::job"})
        self.batch_mode(use_docker=False)

    def stop(self) -> None:
        """Kill it: it holds nothing worth a clean shutdown (held Batch jobs would delay one)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module", name="moto")
def moto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server per test module; each test starts from a reset server."""
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="aws")
def aws_fixture(moto: MotoServer) -> MotoServer:
    """The module's moto server, reset for this test."""
    moto.reset()
    return moto


__all__ = ["REGION", "MotoServer", "aws_fixture", "moto_fixture"]
