"""Ready-set scores: priority band first, FIFO sequence second.

score = (PRIORITY_MAX - priority) * 2**40 + seq, so ZPOPMIN yields the highest priority
first and, within one priority, the lowest sequence (first released). With priorities in
[-1000, 1000] the largest score is below 2001 * 2**40 ≈ 2.2e15 < 2**53: every score is an
exact integer in a double. lib.lua computes the same formula; tests check they agree.
"""

from __future__ import annotations

from broker.spec import PRIORITY_MAX, PRIORITY_MIN

SEQ_BITS = 40
SEQ_SPAN = 1 << SEQ_BITS


def clamp_priority(priority: int) -> int:
    """Keep a combined (run + node) priority in the representable range."""
    return max(PRIORITY_MIN, min(PRIORITY_MAX, priority))


def score(priority: int, seq: int) -> int:
    """Sorted-set score of a ready task."""
    p = clamp_priority(priority)
    return (PRIORITY_MAX - p) * SEQ_SPAN + (seq % SEQ_SPAN)


def unscore(value: float) -> tuple[int, int]:
    """Inverse of `score`: (priority, seq)."""
    band, seq = divmod(int(value), SEQ_SPAN)
    return PRIORITY_MAX - band, seq
