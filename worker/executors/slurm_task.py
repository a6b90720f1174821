"""One task of a SLURM batch: its array element, what happened to it, and its Completion."""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from broker.wire import Completion, Outcome
from worker.executors.attempt import LaunchError, render_command
from worker.executors.outcome import parse_result, tail_text
from worker.executors.slurm_logs import copy_new, remove_output
from worker.executors.slurm_script import Element, check_env
from worker.executors.slurm_state import verdict

if TYPE_CHECKING:
    from broker.wire import TaskMessage
    from worker.executors.paths import AttemptPaths
    from worker.executors.slurm_init import InitJob
    from worker.executors.slurm_state import ElementState
    from worker.handle import TaskHandle

TAIL_READ_BYTES = 16 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def build_element(msg: TaskMessage, paths: AttemptPaths) -> Element:
    """The task's argv, env and directory with placeholders rendered (LaunchError if not)."""
    argv, env, cwd = render_command(msg, "slurm")
    env.update(
        DAGB_RUN=msg.run, DAGB_NODE=msg.node, DAGB_TASK=msg.tpl, DAGB_ATTEMPT=str(msg.attempt),
        DAGB_RESULT=str(paths.result), DAGB_INPUTS=str(paths.inputs),
    )
    try:
        check_env(env)
    except ValueError as e:
        raise LaunchError(str(e)) from e
    return Element(argv=argv, env=env, cwd=cwd)


@dataclass(eq=False)
class Tracked:
    """A task of the batch while the executor follows its array element."""

    handle: TaskHandle
    paths: AttemptPaths
    element: Element | None = None
    job_id: str = ""
    index: int = 0
    out_path: Path | None = None  # the element's output file, tailed into paths.log
    log_pos: int = 0
    submitted_at_ms: int = 0
    started_at_ms: int = 0
    started_mono: float | None = None  # first seen running (the timeout counts from here)
    stop: tuple[Outcome, str] | None = None  # why we cancelled it (cancel, shutdown, timeout)
    cancelled_mono: float | None = None  # when it was decided
    scancelled: bool = False  # scancel accepted (else it is sent again next round)
    unknown_polls: int = 0
    final: ElementState | None = None
    early: Completion | None = None  # ended before (or instead of) running
    init: InitJob | None = None  # the batch's init job its array waits for

    @property
    def copying(self) -> bool:
        """Its element's output may go to its log: it started, after its init's copy."""
        return self.started_mono is not None and (self.init is None or self.init.copied)

    @property
    def msg(self) -> TaskMessage:
        return self.handle.msg

    @property
    def element_id(self) -> str:
        return f"{self.job_id}_{self.index}"

    @property
    def watching(self) -> bool:
        return self.early is None and self.final is None and bool(self.job_id)

    def fail_early(self, outcome: Outcome, reason: str, runner: str) -> None:
        m = self.msg
        t = now_ms()
        self.early = Completion(
            run=m.run, node=m.node, attempt=m.attempt, outcome=outcome, runner=runner,
            reason=reason, started_at_ms=self.submitted_at_ms or t, finished_at_ms=t,
        )


def _read(path: Path, last_bytes: int | None = None) -> bytes | None:
    try:
        with path.open("rb") as f:
            if last_bytes is not None:
                f.seek(max(0, f.seek(0, 2) - last_bytes))
            return f.read()
    except FileNotFoundError:
        return None


def _note(log: Path, text: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n[dagbroker] {text}\n")


def _cleanup(t: Tracked) -> None:
    shutil.rmtree(t.paths.work, ignore_errors=True)
    with contextlib.suppress(OSError):
        t.paths.work.parent.rmdir()
    if t.out_path is not None:
        remove_output(t.out_path)


def _outcome(t: Tracked) -> tuple[Outcome, str, int | None, Any]:
    assert t.final is not None
    outcome, reason, code = verdict(t.final)
    if t.stop is not None:  # we cancelled it: say why, whatever SLURM made of it
        return t.stop[0], t.stop[1], code if t.started_mono is not None else None, None
    result: Any = None
    if outcome is Outcome.SUCCEEDED:
        result, err = parse_result(_read(t.paths.result))
        if err:
            outcome, reason = Outcome.FAILED, err
    return outcome, reason, code, result


def finish(t: Tracked, runner: str) -> Completion:
    """Blocking (in a thread): last log copy, result, tail, cleanup → the Completion."""
    if t.early is not None:
        _note(t.paths.log, f"{t.early.outcome.value}: {t.early.reason}")
        _cleanup(t)
        tail = tail_text(_read(t.paths.log, TAIL_READ_BYTES) or b"")
        return msgspec.structs.replace(t.early, tail=tail)
    if t.out_path is not None:
        t.log_pos = copy_new(t.out_path, t.paths.log, t.log_pos)
    outcome, reason, code, result = _outcome(t)
    if reason:
        _note(t.paths.log, f"{outcome.value}: {reason} (SLURM job {t.element_id})")
    tail = tail_text(_read(t.paths.log, TAIL_READ_BYTES) or b"")
    _cleanup(t)
    m = t.msg
    return Completion(
        run=m.run, node=m.node, attempt=m.attempt, outcome=outcome, runner=runner,
        exit_code=code, reason=reason, result=result, tail=tail,
        started_at_ms=t.started_at_ms or t.submitted_at_ms, finished_at_ms=now_ms(),
    )
