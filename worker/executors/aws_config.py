"""Settings of the aws_batch executor, derived from the worker's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from worker.config import WorkerSettings


class AwsBatchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how aws_batch tasks are submitted. Intervals carry their unit in the name."""

    job_queue: str  # name or ARN
    region: str | None = None  # None: the AWS configuration chain
    endpoint_url: str | None = None  # None: AWS itself
    job_role_arn: str | None = None
    poll_initial_s: float = 2.0  # first DescribeJobs after this, then × poll_factor …
    poll_factor: float = 2.0
    poll_max_s: float = 30.0  # … up to this
    default_memory_mb: int = 2048  # Batch needs a memory size; used when a task gives none
    name_prefix: str = "dagb"  # job and job definition names start with it
    client_options: dict[str, Any] = {}  # extra aiobotocore create_client arguments

    def __post_init__(self) -> None:
        if not self.job_queue:
            raise ValueError("aws_batch needs a job queue")
        if not 0 < self.poll_initial_s <= self.poll_max_s or self.poll_factor < 1:
            raise ValueError("aws_batch polling: need 0 < initial <= max and factor >= 1")

    def client_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.client_options)
        if self.region:
            kwargs["region_name"] = self.region
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return kwargs


def aws_batch_config(settings: WorkerSettings) -> AwsBatchConfig | None:
    """The executor's settings, or None when the worker has no job queue (not offered then)."""
    if not settings.aws_batch_queue:
        return None
    return AwsBatchConfig(
        job_queue=settings.aws_batch_queue, region=settings.aws_region or None,
        endpoint_url=settings.aws_endpoint_url or None,
        job_role_arn=settings.aws_batch_job_role or None,
    )
