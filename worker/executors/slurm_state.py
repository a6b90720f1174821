"""Pure: what SLURM says about the elements of a job array, and what that means for a task.

Every batch is submitted as one job array (a single task is the array `0-0`), so an element
is `(array job id, index)` and SLURM names it `<id>_<index>`. Three sources, in the order
they are asked: `squeue` (while the job is known to the controller, MinJobAge after it ends),
`scontrol show job` (same lifetime, but it has the exit code), `sacct` (needs slurmdbd).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from broker.wire import Outcome
from worker.executors.outcome import signal_name

# States in which an element may still run (or start); anything else is final.
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
    "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
})
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "STOPPED"})
# Not the task's fault: the broker retries it at once (Outcome.LOST), without using a retry.
LOST_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})

_SCONTROL_FIELD = re.compile(r"(\w+)=(\S*)")
REST = -1  # key of the array's own record: the state of elements not listed on their own
NO_VAL = "4294967294"  # scontrol's ArrayTaskId of that record once no index is left in it


@dataclass(frozen=True, slots=True)
class ElementState:
    state: str  # COMPLETED, FAILED, OUT_OF_MEMORY, ... (SLURM's own name)
    reason: str = ""  # SLURM's Reason field ('None' is kept out)
    exit_code: int | None = None  # None: not known from this source (squeue)
    signal: int = 0

    @property
    def final(self) -> bool:
        return self.state not in ACTIVE_STATES

    @property
    def started(self) -> bool:
        return self.state in STARTED_STATES


def base_state(text: str) -> str:
    """'CANCELLED by 0' (sacct), 'CANCELLED+' → 'CANCELLED'."""
    return text.split(" ", 1)[0].rstrip("+").upper()


def element_state(states: dict[int, ElementState], index: int) -> ElementState | None:
    """The element's own record, else the array's record standing for the rest."""
    return states.get(index, states.get(REST))


def parse_indices(text: str) -> list[int]:
    """An array task spec: '3', '0-4', '1,3,5-7', '0-9%2' (throttle), '[0-4]' → indices."""
    text = text.strip().strip("[]").split("%", 1)[0]
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            continue
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def parse_exit_code(text: str) -> tuple[int | None, int]:
    """'3:0' → (3, 0); '0:9' → (0, 9); '' → (None, 0)."""
    code, _, sig = text.partition(":")
    if not code.strip().isdigit():
        return None, 0
    return int(code), int(sig) if sig.strip().isdigit() else 0


def _reason(text: str) -> str:
    return "" if text in ("None", "(null)") else text


def parse_element_id(text: str, job_id: str) -> list[int]:
    """squeue/sacct id of an element of array `job_id`: '12_3' → [3], '12_[4-6]' → [4, 5, 6].

    A plain '12' is the array's own record, which stands for the elements it does not list
    (a one-element array cancelled while pending is shown so): → [REST]."""
    head, sep, tail = text.strip().partition("_")
    if head != job_id:
        return []
    return parse_indices(tail) if sep else [REST]


def parse_squeue(text: str, job_id: str) -> dict[int, ElementState]:
    """`squeue -h -r -t all -j ID -o '%i|%T|%r'` → {index: state} (exit code unknown)."""
    out: dict[int, ElementState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3:
            continue
        for index in parse_element_id(parts[0], job_id):
            out[index] = ElementState(base_state(parts[1]), _reason(parts[2]))
    return out


def parse_scontrol(text: str, job_id: str) -> dict[int, ElementState]:
    """`scontrol -o show job ID` (one record per line; an unsplit pending or cancelled part
    of an array is one record with ArrayTaskId=2-5) → {index: state}. A job that is not an
    array (a batch's init job) has no ArrayJobId: its record is REST."""
    out: dict[int, ElementState] = {}
    for line in text.splitlines():
        fields = dict(_SCONTROL_FIELD.findall(line))
        plain = "ArrayJobId" not in fields and fields.get("JobId") == job_id
        if (fields.get("ArrayJobId") != job_id and not plain) or "JobState" not in fields:
            continue
        code, sig = parse_exit_code(fields.get("ExitCode", ""))
        state = ElementState(
            base_state(fields["JobState"]), _reason(fields.get("Reason", "")), code, sig
        )
        task_ids = fields.get("ArrayTaskId", "")
        for index in parse_indices(task_ids) if task_ids not in (NO_VAL, "N/A", "") else [REST]:
            out[index] = state
    return out


def parse_sacct(text: str, job_id: str) -> dict[int, ElementState]:
    """`sacct -n -P -X -j ID -o JobID,State,ExitCode` → {index: state}."""
    out: dict[int, ElementState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3:
            continue
        code, sig = parse_exit_code(parts[2])
        for index in parse_element_id(parts[0], job_id):
            out[index] = ElementState(base_state(parts[1]), "", code, sig)
    return out


def verdict(st: ElementState) -> tuple[Outcome, str, int | None]:
    """A final element state → (outcome, reason, exit code). Reasons name SLURM's state, so
    OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED and FAILED are told apart."""
    code = st.exit_code
    if st.state == "COMPLETED" and not code and not st.signal:
        return Outcome.SUCCEEDED, "", 0
    if st.state in LOST_STATES:
        return Outcome.LOST, f"slurm: {st.state}", code
    if st.state not in ("FAILED", "COMPLETED"):  # OUT_OF_MEMORY, TIMEOUT, CANCELLED, DEADLINE…
        # (their exit code and signal are how SLURM ended the job, not the task's own)
        return Outcome.FAILED, f"slurm: {st.state}", code
    if st.signal and not code:  # shell convention: a negative code is a signal
        return Outcome.FAILED, f"slurm: FAILED (killed by signal {signal_name(st.signal)})", \
            -st.signal
    return Outcome.FAILED, f"slurm: FAILED (exit code {code})", code
