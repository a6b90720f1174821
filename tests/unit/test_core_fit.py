"""broker.core.fit: needs, offers, the front of offers, and the reason texts."""

from __future__ import annotations

import math
import re
from pathlib import Path

from broker.core import fit


def test_task_needs_defaults_of_an_omit_defaults_spec() -> None:
    assert fit.task_needs({"node": "a", "executor": "shell"}) == {
        "cores": 1.0, "memory_mb": 0.0, "gpus": 0.0}
    assert fit.task_needs({"cores": 0.5, "memory_mb": 2048, "gpus": 2}) == {
        "cores": 0.5, "memory_mb": 2048.0, "gpus": 2.0}
    assert fit.task_needs({"executor": "slurm", "cores": 64, "gpus": 4}) == {
        "cores": 0.0, "memory_mb": 0.0, "gpus": 0.0}


def test_runner_offer_missing_or_bad_fields_have_no_limit() -> None:
    assert fit.runner_offer({}) == {}
    assert fit.runner_offer({"cores": "4", "memory_mb": "", "gpus": "x"}) == {"cores": 4.0}
    assert fit.runner_offer({"cores": "0.5", "memory_mb": "1024", "gpus": "0"}) == {
        "cores": 0.5, "memory_mb": 1024.0, "gpus": 0.0}


def test_front_keeps_offers_no_other_covers() -> None:
    a = {"cores": 8.0, "memory_mb": 4096.0, "gpus": 0.0}
    b = {"cores": 2.0, "memory_mb": 65536.0, "gpus": 0.0}
    small = {"cores": 2.0, "memory_mb": 4096.0, "gpus": 0.0}
    assert fit.front([small, a, b, dict(a)]) == [a, b]
    assert fit.front([a, {}]) == [{}]  # an unsized runner covers everything
    assert fit.largest([a, b]) == {"cores": 8.0, "memory_mb": 65536.0, "gpus": 0.0}
    assert fit.largest([a, {"gpus": 1.0}]) == {"gpus": 1.0}


def test_fits_any_needs_one_runner_with_everything() -> None:
    offers = [{"cores": 8.0, "memory_mb": 4096.0}, {"cores": 2.0, "memory_mb": 65536.0}]
    assert fit.fits_any({"cores": 8, "memory_mb": 4096, "gpus": 0}, offers)
    assert not fit.fits_any({"cores": 8, "memory_mb": 8192, "gpus": 0}, offers)
    assert fit.fits_any({"cores": 8, "memory_mb": 8192, "gpus": 5}, None)
    assert fit.covers({}, {"cores": math.inf})


def test_amounts_read_well() -> None:
    assert fit.amount("cores", 1) == "1 core"
    assert fit.amount("cores", 0.5) == "0.5 cores"
    assert fit.amount("memory_mb", 512) == "512 MiB"
    assert fit.amount("memory_mb", 65536) == "64 GiB"
    assert fit.amount("memory_mb", 1536) == "1.5 GiB"
    assert fit.amount("gpus", 2) == "2 GPUs"
    assert fit.public_needs({"cores": 1.0, "memory_mb": 8192.0, "gpus": 0.0}) == {
        "memory_mb": 8192}
    assert fit.public_needs({"cores": 2.5, "memory_mb": 0.0, "gpus": 1.0}) == {
        "cores": 2.5, "gpus": 1}


def test_reasons() -> None:
    needs = {"cores": 8.0, "memory_mb": 0.0, "gpus": 0.0}
    offers = [{"cores": 4.0, "memory_mb": 16384.0, "gpus": 0.0}]
    assert fit.unfit_reason(needs, offers, "cpu") == (
        "needs 8 cores; the largest live runner of class 'cpu' offers 4 cores")
    needs = {"cores": 1.0, "memory_mb": 98304.0, "gpus": 2.0}
    offers = [{"cores": 64.0, "memory_mb": 65536.0, "gpus": 1.0}]
    assert fit.unfit_reason(needs, offers, "gpu") == (
        "needs 96 GiB of memory and 2 GPUs; the largest live runner of class 'gpu' offers "
        "64 GiB and 1 GPU")
    needs = {"cores": 8.0, "memory_mb": 16384.0, "gpus": 0.0}
    offers = [{"cores": 8.0, "memory_mb": 4096.0}, {"cores": 2.0}]
    assert fit.unfit_reason(needs, offers, "cpu") == (
        "needs 8 cores and 16 GiB of memory on one runner; no live runner of class 'cpu' "
        "offers all of them (they offer 8 cores and 4 GiB, 2 cores and unlimited memory)")


def test_executors_without_local_needs_agree_with_lib_lua() -> None:
    """lib.lua keeps its own copy of the set (Lua cannot import Python): the two must agree."""
    lua = (Path(fit.__file__).parents[1] / "engine" / "lua" / "lib.lua").read_text()
    m = re.search(r"local NO_LOCAL_NEEDS = \{([^}]*)\}", lua)
    assert m is not None
    assert set(re.findall(r"(\w+) = true", m.group(1))) == set(fit.NO_LOCAL_NEEDS)
    for ex in fit.NO_LOCAL_NEEDS:
        assert fit.task_needs({"executor": ex, "cores": 64, "gpus": 4}) == {
            "cores": 0.0, "memory_mb": 0.0, "gpus": 0.0}
    assert fit.task_needs({"executor": "python", "cores": 2})["cores"] == 2.0
