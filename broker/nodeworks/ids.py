"""Chart uniquenames → native node ids; pure and deterministic.

A uniquename that is already a valid node id keeps it (`float.0`); others are sanitised
(`"my string node"` → `my_string_node`) and made unique with `-2`, `-3`, … The same chart
always gives the same mapping, so `export` can invert it from the original chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from broker.spec import NODE_ID_PATTERN

_VALID = re.compile(NODE_ID_PATTERN)
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_BASE = 120  # leaves room for a "-N" suffix within the 128-character limit


def sanitize(name: str) -> str:
    """A node id close to `name`: unsafe runs become '_', a leading '.' or '-' gets '_'."""
    base = _UNSAFE_RUN.sub("_", name).strip("_") or "node"
    if base[0] in ".-":
        base = "_" + base
    return base[:MAX_BASE]


def node_ids(uniquenames: Iterable[str]) -> dict[str, str]:
    """{uniquename: node id}, unique, each id matching the native node-id pattern."""
    names = list(uniquenames)
    ids = {u: u for u in names if _VALID.match(u)}
    taken = set(ids.values())
    for u in names:
        if u in ids:
            continue
        base = candidate = sanitize(u)
        n = 2
        while candidate in taken:
            candidate = f"{base}-{n}"
            n += 1
        ids[u] = candidate
        taken.add(candidate)
    return {u: ids[u] for u in names}
