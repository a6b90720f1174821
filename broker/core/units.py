"""Parsing of human resource quantities: memory sizes and durations."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_FACTOR_MB = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def memory_mb(value: str | int | None) -> int | None:
    """`4096` → 4096, `"4G"` → 4096, `"512M"` → 512. Plain numbers are MiB."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"not a size: {value!r} (use MiB as a number, or e.g. '512M', '4G')")
    unit = m.group(2).upper()
    if not unit and m.group(3):  # a bare "B" means bytes
        return int(round(float(m.group(1)) / (1024 * 1024)))
    return int(round(float(m.group(1)) * _FACTOR_MB[unit]))


def duration_s(value: str | float | int | None) -> float | None:
    """Seconds from `90`, `"01:30:00"`, `"30m"`, or SLURM day forms `"2-00:00:00"`, `"1-12"`."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if m:
        return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            raise ValueError(f"not a duration: {value!r}")
        days = int(d)
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a duration: {value!r} (use seconds, 'HH:MM:SS' or e.g. '30m')")
    if "-" in value:  # SLURM: D-H, D-H:M, D-H:M:S count hours first
        parts = parts + ["0"] * (3 - len(parts))
    secs = 0
    for p in parts:
        secs = secs * 60 + int(p)
    return float(days * 86400 + secs)
