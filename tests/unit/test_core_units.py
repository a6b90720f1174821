"""broker.core.units: memory sizes (MiB) and durations (seconds)."""

from __future__ import annotations

import pytest

from broker.core.units import duration_s, memory_mb


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        (None, None),
        (0, 0),
        (4096, 4096),
        ("4096", 4096),
        ("512M", 512),
        ("512m", 512),
        ("512MB", 512),
        ("512MiB", 512),
        ("512 M", 512),
        (" 4G ", 4096),
        ("4g", 4096),
        ("4GB", 4096),
        ("4GiB", 4096),
        ("1.5G", 1536),
        ("0.5G", 512),
        ("1T", 1024 * 1024),
        ("2048K", 2),
        ("1536K", 2),  # rounds to the nearest MiB
        ("64G", 65536),
    ],
)
def test_memory(text: str | int | None, mb: int | None) -> None:
    assert memory_mb(text) == mb


@pytest.mark.parametrize(
    "text", ["", "lots", "G", "-1G", "1.G", "1,5G", "4 GigaBytes", "4X", "1e3M", "4GG"]
)
def test_memory_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        memory_mb(text)


def test_memory_bytes_suffix_means_bytes() -> None:
    """`B` alone is bytes, not MiB: "1048576B" is 1 MiB, not a terabyte."""
    assert memory_mb("1048576B") == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (None, None),
        (0, 0.0),
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("05:00", 300.0),  # MM:SS
        ("01:30:00", 5400.0),
        ("1:00:00", 3600.0),
        ("2-00:00:00", 172800.0),
        ("1-01:00:00", 90000.0),
        ("30s", 30.0),
        ("30m", 1800.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        (" 10 m ", 600.0),
        ("100:00:00", 360000.0),
    ],
)
def test_duration(text: str | float | None, seconds: float | None) -> None:
    assert duration_s(text) == seconds
    if seconds is not None:
        assert isinstance(duration_s(text), float)


@pytest.mark.parametrize(
    "text",
    ["", "soon", "1:2:3:4", "x-01:00:00", "-5", "1-", "1h30m", "1:-2", "1.5:00", "10y", "::"],
)
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_s(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1-12", 1 * 86400 + 12 * 3600),  # SLURM days-hours
        ("1-02:30", 86400 + 2 * 3600 + 30 * 60),  # SLURM days-hours:minutes
    ],
)
def test_duration_slurm_day_forms(text: str, seconds: int) -> None:
    """The docstring promises SLURM day syntax; SLURM reads "D-H" and "D-H:M" as hours first."""
    assert duration_s(text) == seconds
