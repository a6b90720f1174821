"""Does a task fit a runner? A task's needs against the offers of a class's live runners.

A runner advertises what it offers in its hash (`cores`, `memory_mb`, `gpus`); a runner that
does not (an older worker) offers "anything" in that dimension, so an upgrade never strands
work. Per class the broker keeps the offers that no other live runner's offer covers (the
Pareto front) in `dagb:fit:{class}`; dispatch.lua parks a ready task that fits none of them
(docs/redis-keys.md). The same rules and the reason texts shown to users are here. Pure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

DIMENSIONS = ("cores", "memory_mb", "gpus")
LABELS = {"cores": "cores", "memory_mb": "memory", "gpus": "GPUs"}
# Executors whose tasks use none of the runner's own cores, memory or GPUs: those that run
# elsewhere (a SLURM node, an SSH host, AWS), and those that run nothing (`noop`, and `event`,
# which the broker completes). The runner's size does not limit them; they only take a slot.
# worker/resources.py uses this set; lib.lua `NO_LOCAL_NEEDS` must list the same names.
NO_LOCAL_NEEDS = frozenset({"slurm", "ssh", "aws_batch", "noop", "event"})
INF = math.inf

Offer = dict[str, float]  # dimension → amount; a missing dimension means no limit


def task_needs(spec: Mapping[str, Any]) -> dict[str, float]:
    """A TaskSpec's requirements as JSON-decoded (defaults omitted: 1 core, no memory, 0 GPUs).
    A task of an executor in NO_LOCAL_NEEDS needs nothing of the runner itself."""
    if spec.get("executor") in NO_LOCAL_NEEDS:
        return {d: 0.0 for d in DIMENSIONS}
    return {
        "cores": float(spec.get("cores", 1) or 0),
        "memory_mb": float(spec.get("memory_mb") or 0),
        "gpus": float(spec.get("gpus", 0) or 0),
    }


def runner_offer(fields: Mapping[str, str | None]) -> Offer:
    """What a runner hash advertises; an absent or unreadable field means no limit."""
    out: Offer = {}
    for dim in DIMENSIONS:
        text = fields.get(dim)
        try:
            value = float(text) if text else INF
        except ValueError:
            value = INF
        if math.isfinite(value):
            out[dim] = value
    return out


def covers(offer: Offer, needs: Mapping[str, float]) -> bool:
    """True if `offer` has at least `needs` in every dimension."""
    return all(needs.get(d, 0) <= offer.get(d, INF) for d in DIMENSIONS)


def _dominates(a: Offer, b: Offer) -> bool:
    """`a` offers at least as much as `b` in every dimension (missing: no limit)."""
    return all(a.get(d, INF) >= b.get(d, INF) for d in DIMENSIONS)


def front(offers: Iterable[Offer]) -> list[Offer]:
    """The offers no other offer covers, deduplicated, in a stable order (largest first)."""
    unique = {json.dumps(o, sort_keys=True): o for o in offers}
    kept = [
        o for k, o in unique.items()
        if not any(k2 != k and _dominates(o2, o) for k2, o2 in unique.items())
    ]
    return sorted(kept, key=lambda o: tuple(-o.get(d, INF) for d in DIMENSIONS))


def largest(offers: Iterable[Offer]) -> Offer:
    """Per dimension, the largest amount any of the offers has (missing: no limit)."""
    offers = list(offers)
    out: Offer = {}
    for d in DIMENSIONS:
        best = max((o.get(d, INF) for o in offers), default=INF)
        if math.isfinite(best):
            out[d] = best
    return out


def fits_any(needs: Mapping[str, float], offers: list[Offer] | None) -> bool:
    """dispatch.lua's test: no offers recorded (no limit) or one offer covers the needs."""
    return offers is None or any(covers(o, needs) for o in offers)


def _num(x: float) -> str:
    return f"{x:g}"


def amount(dim: str, x: float) -> str:
    """`8 cores`, `1 core`, `512 MiB`, `64 GiB`, `1.5 GiB`, `2 GPUs`."""
    if dim == "memory_mb":
        if x >= 1024:
            return f"{_num(round(x / 1024, 1))} GiB"
        return f"{_num(x)} MiB"
    unit = "core" if dim == "cores" else "GPU"
    return f"{_num(x)} {unit}{'' if x == 1 else 's'}"


def _need_text(dim: str, x: float) -> str:
    return amount(dim, x) + (" of memory" if dim == "memory_mb" else "")


def _offer_text(dim: str, offer: Offer) -> str:
    return amount(dim, offer[dim]) if dim in offer else f"unlimited {LABELS[dim]}"


def shortfall(needs: Mapping[str, float], offer: Offer) -> list[str]:
    """Dimensions where `needs` exceed `offer`."""
    return [d for d in DIMENSIONS if needs.get(d, 0) > offer.get(d, INF)]


def public_needs(needs: Mapping[str, float]) -> dict[str, float | int]:
    """The needs as shown to users: only what was asked for, integers without `.0`."""
    out: dict[str, float | int] = {}
    for d in DIMENSIONS:
        x = needs.get(d, 0)
        if x and (d != "cores" or x != 1):
            out[d] = int(x) if float(x).is_integer() else x
    return out


def unfit_reason(needs: Mapping[str, float], offers: list[Offer], rclass: str) -> str:
    """Why no live runner of `rclass` can take a task with these needs.

    `needs 8 cores; the largest live runner of class 'cpu' offers 4 cores`, or, when each
    amount exists on some runner but no runner has them all: `needs 8 cores and 64 GiB of
    memory on one runner; no live runner of class 'cpu' offers all of them (they offer 8 cores
    and 4 GiB, 2 cores and 64 GiB)`.
    """
    best = largest(offers)
    short = shortfall(needs, best)
    if short:
        asked = " and ".join(_need_text(d, needs[d]) for d in short)
        has = " and ".join(amount(d, best[d]) for d in short)
        return f"needs {asked}; the largest live runner of class '{rclass}' offers {has}"
    dims = [d for d in DIMENSIONS if needs.get(d, 0) > 0 and any(d in o for o in offers)]
    asked = " and ".join(_need_text(d, needs[d]) for d in dims)
    each = ", ".join(" and ".join(_offer_text(d, o) for d in dims) for o in offers)
    return (f"needs {asked} on one runner; no live runner of class '{rclass}' offers all of "
            f"them (they offer {each})")
