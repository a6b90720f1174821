"""broker.core.classes: the resource class rules, in order."""

from __future__ import annotations

import pytest

from broker.core.classes import BIGMEM_MB, resource_class


@pytest.mark.parametrize(
    ("explicit", "gpus", "memory", "rclass"),
    [
        (None, 0, None, "cpu"),
        (None, 0, 1024, "cpu"),
        (None, 0, BIGMEM_MB - 1, "cpu"),
        (None, 0, BIGMEM_MB, "bigmem"),
        (None, 0, 10**7, "bigmem"),
        (None, 1, None, "gpu"),
        (None, 8, BIGMEM_MB * 4, "gpu"),  # gpu beats bigmem
        ("special", 0, None, "special"),
        ("special", 4, BIGMEM_MB, "special"),  # explicit beats everything
        ("", 1, None, "gpu"),  # an empty class is no class
    ],
)
def test_rules(explicit: str | None, gpus: int, memory: int | None, rclass: str) -> None:
    assert resource_class(explicit, gpus, memory) == rclass


def test_bigmem_threshold_is_64_gib() -> None:
    assert BIGMEM_MB == 65536
