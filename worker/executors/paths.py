"""Where one attempt's files live. Pure path arithmetic (no I/O).

    {data_dir}/logs/{run}/{node}/attempt-{n}.log     stdout+stderr, kept
    {data_dir}/work/{run}/{node}.{n}/result.json     DAGB_RESULT, removed after the attempt
    {data_dir}/work/{run}/{node}.{n}/inputs.json     DAGB_INPUTS, removed after the attempt
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.wire import TaskMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def safe_part(text: str) -> str:
    """One path component: no separators, never '.' or '..'."""
    cleaned = _UNSAFE.sub("_", text) or "_"
    return "_" + cleaned if cleaned in {".", ".."} else cleaned


@dataclass(frozen=True)
class AttemptPaths:
    log: Path
    work: Path

    @classmethod
    def for_task(cls, data_dir: Path, msg: TaskMessage) -> AttemptPaths:
        run, node = safe_part(msg.run), safe_part(msg.node)
        return cls(
            log=data_dir / "logs" / run / node / f"attempt-{msg.attempt}.log",
            work=data_dir / "work" / run / f"{node}.{msg.attempt}",
        )

    @property
    def result(self) -> Path:
        return self.work / "result.json"

    @property
    def inputs(self) -> Path:
        return self.work / "inputs.json"

    @property
    def kwargs(self) -> Path:
        return self.work / "kwargs.json"

    @property
    def error(self) -> Path:
        return self.work / "error.json"
