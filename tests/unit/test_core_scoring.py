"""broker.core.scoring: priority band first, FIFO second, every score an exact double."""

from __future__ import annotations

import random

import pytest

from broker.core.scoring import SEQ_BITS, SEQ_SPAN, clamp_priority, score, unscore
from broker.spec import PRIORITY_MAX, PRIORITY_MIN

PRIORITIES = [PRIORITY_MIN, PRIORITY_MIN + 1, -1, 0, 1, PRIORITY_MAX - 1, PRIORITY_MAX]


def test_constants() -> None:
    assert (PRIORITY_MIN, PRIORITY_MAX) == (-1000, 1000)
    assert SEQ_BITS == 40 and SEQ_SPAN == 2**40


def test_formula() -> None:
    assert score(PRIORITY_MAX, 0) == 0
    assert score(0, 7) == 1000 * 2**40 + 7
    assert score(PRIORITY_MIN, 1) == 2000 * 2**40 + 1


@pytest.mark.parametrize(("hi", "lo"), [(1, 0), (0, -1), (1000, -1000), (1000, 999), (-999, -1000)])
def test_higher_priority_pops_first(hi: int, lo: int) -> None:
    # even when the higher-priority task was released much later
    assert score(hi, SEQ_SPAN - 1) < score(lo, 0)


@pytest.mark.parametrize("priority", PRIORITIES)
def test_fifo_within_a_priority(priority: int) -> None:
    seqs = [0, 1, 2, 1000, 2**32, SEQ_SPAN - 1]
    scores = [score(priority, s) for s in seqs]
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)


def test_ordering_of_a_shuffled_set() -> None:
    rnd = random.Random(7)
    items = [(rnd.randint(-1000, 1000), seq) for seq in range(500)]
    rnd.shuffle(items)
    popped = sorted(items, key=lambda it: score(*it))
    expected = sorted(items, key=lambda it: (-it[0], it[1]))
    assert popped == expected


def test_largest_score_is_below_2_53_and_exact() -> None:
    largest = score(PRIORITY_MIN, SEQ_SPAN - 1)
    assert largest == 2001 * 2**40 - 1
    assert largest < 2**53
    assert int(float(largest)) == largest
    assert float(largest) != float(largest - 1)  # neighbours stay distinct as doubles
    # the smallest
    assert score(PRIORITY_MAX, 0) == 0


@pytest.mark.parametrize("priority", PRIORITIES)
@pytest.mark.parametrize("seq", [0, 1, 12345, SEQ_SPAN - 2, SEQ_SPAN - 1])
def test_every_score_is_exact_as_a_double(priority: int, seq: int) -> None:
    s = score(priority, seq)
    assert int(float(s)) == s
    assert float(s) + 1 == float(s + 1)


@pytest.mark.parametrize("priority", PRIORITIES)
@pytest.mark.parametrize("seq", [0, 1, 99, SEQ_SPAN - 1])
def test_unscore_inverts_score(priority: int, seq: int) -> None:
    assert unscore(score(priority, seq)) == (priority, seq)
    assert unscore(float(score(priority, seq))) == (priority, seq)  # as Redis returns it


def test_unscore_of_random_values() -> None:
    rnd = random.Random(1)
    for _ in range(2000):
        p, seq = rnd.randint(PRIORITY_MIN, PRIORITY_MAX), rnd.randrange(SEQ_SPAN)
        assert unscore(float(score(p, seq))) == (p, seq)


def test_sequence_wraps_instead_of_leaving_the_band() -> None:
    assert score(5, SEQ_SPAN) == score(5, 0)
    assert score(5, SEQ_SPAN + 3) == score(5, 3)
    assert unscore(score(5, SEQ_SPAN + 3)) == (5, 3)


@pytest.mark.parametrize(
    ("given", "clamped"),
    [
        (0, 0),
        (1000, 1000),
        (1001, 1000),
        (10**12, 1000),
        (-1000, -1000),
        (-1001, -1000),
        (-(10**12), -1000),
    ],
)
def test_clamp(given: int, clamped: int) -> None:
    assert clamp_priority(given) == clamped
    assert score(given, 3) == score(clamped, 3)
