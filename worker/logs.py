"""Logging setup for the worker process: plain text, or one JSON object per line.

Task-related log calls pass `extra=task_extra(msg)`, so JSON lines carry run/node/attempt.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from broker.wire import TaskMessage

TASK_FIELDS = ("run", "node", "attempt")
_encode = msgspec.json.Encoder().encode


def task_extra(msg: TaskMessage) -> dict[str, Any]:
    """`extra=` for a log call about one task attempt."""
    return {"run": msg.run, "node": msg.node, "attempt": msg.attempt}


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg", [runner, run, node, attempt], [exc]} per line."""

    def __init__(self, runner: str = "") -> None:
        super().__init__()
        self.runner = runner

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.msecs)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"
        out: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.runner:
            out["runner"] = self.runner
        for name in TASK_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out).decode()


def configure_logging(json_lines: bool, verbose: bool = False, runner: str = "") -> None:
    """Root handler on stderr; replaces handlers set before (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(runner))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # redis-py is chatty at debug level; keep it at info unless something is wrong.
    logging.getLogger("redis").setLevel(logging.INFO)
