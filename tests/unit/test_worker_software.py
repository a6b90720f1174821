"""`dagbroker worker --software NAME[=VERSION]` (or DAGBROKER_SOFTWARE) → WorkerSettings."""

from __future__ import annotations

import pytest

from worker.cli import parse_settings
from worker.config import WorkerSettings
from worker.registry import RunnerStatus, runner_fields

ENV = {"DAGBROKER_REDIS_URL": "redis://x:1/0"}


def test_software_flags_are_repeatable_and_win_over_the_environment() -> None:
    s, _ = parse_settings(["--software", "openfoam=11", "--software", "mfix",
                           "--software", "mfix"], ENV)
    assert s.software == ["openfoam=11", "mfix"]  # each once, in order
    env = {**ENV, "DAGBROKER_SOFTWARE": "gcc=12.2, cuda=12.1,,"}
    assert parse_settings([], env)[0].software == ["gcc=12.2", "cuda=12.1"]
    assert parse_settings(["--software", "R=4.3"], env)[0].software == ["R=4.3"]
    assert parse_settings([], ENV)[0].software == []


@pytest.mark.parametrize("bad", ["open foam", "a,b", "", "=1", "x=", "n" * 101, "x=1 2"])
def test_bad_software_is_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="invalid software"):
        WorkerSettings(redis_url="redis://x", software=[bad])
    with pytest.raises(SystemExit):
        parse_settings(["--software", bad], ENV)
    assert "invalid software" in capsys.readouterr().err


def test_software_is_a_json_list_in_the_runner_hash() -> None:
    s = WorkerSettings(redis_url="redis://x", software=["openfoam=11", "mfix"])
    assert runner_fields(s, ["shell"], RunnerStatus())["software"] == '["openfoam=11", "mfix"]'
    assert runner_fields(WorkerSettings(redis_url="redis://x"), [], RunnerStatus())[
        "software"] == "[]"
