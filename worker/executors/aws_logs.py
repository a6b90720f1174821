"""Container output of aws_batch jobs: CloudWatch Logs → the attempt's log file.

Batch sends a container's stdout/stderr to CloudWatch Logs (log group `/aws/batch/job`
unless the job definition configures another); DescribeJobs names the job's stream
(`container.logStreamName`) once the container has started. At each poll the executor pulls
what is new in each started job's stream (GetLogEvents forward from the last token) and
appends it to the attempt log, from where `worker/logship.py` ships it to `dagb:log` like the
output of every other executor. A log that cannot be read (permissions, throttling) is
retried at the next poll; it never affects the task's outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

LOG_GROUP = "/aws/batch/job"
MAX_PAGES = 20  # per pull; what is left waits for the next poll


def stream_of(job: dict[str, Any]) -> str | None:
    """The CloudWatch stream of a described job (None until its container started)."""
    container = job.get("container") or {}
    return container.get("logStreamName") or None


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(line if line.endswith("\n") else line + "\n" for line in lines)


class JobLogTail:
    """One job's stream: where reading stands, and the attempt log it is copied to."""

    __slots__ = ("path", "group", "stream", "token")

    def __init__(self, path: Path, group: str = LOG_GROUP) -> None:
        self.path = path
        self.group = group
        self.stream: str | None = None
        self.token: str | None = None

    async def pull(self, logs: Any) -> int:
        """Append the stream's new events to the log. → lines appended."""
        if self.stream is None:
            return 0
        lines: list[str] = []
        try:
            for _ in range(MAX_PAGES):
                kw: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream,
                                      "startFromHead": True}
                if self.token:
                    kw["nextToken"] = self.token
                r = await logs.get_log_events(**kw)
                events = r.get("events", [])
                lines += [str(e.get("message", "")) for e in events]
                token, self.token = self.token, r.get("nextForwardToken") or self.token
                if not events or token == self.token:
                    break
        except Exception as e:  # not there yet, throttled, no permission: try again later
            logger.debug("cannot read CloudWatch stream %s: %s: %s", self.stream,
                         type(e).__name__, e)
        if lines:
            await asyncio.to_thread(_append, self.path, lines)
        return len(lines)
