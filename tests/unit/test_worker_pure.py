"""Pure parts of the worker: outcome decisions, result files, paths, settings, CLI, logs."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest

from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.cli import parse_settings
from worker.config import WorkerSettings, default_runner_id
from worker.executors.outcome import classify, parse_error, parse_result, tail_text
from worker.executors.paths import AttemptPaths, safe_part
from worker.logs import JsonFormatter
from worker.main import redact_url, task_base_env
from worker.pyrun import accepts_inputs, call, resolve
from worker.streams import decode_entries, flatten_reply


def test_classify_reasons() -> None:
    ok = {"timed_out": False, "timeout_s": None, "stop_outcome": None, "stop_reason": ""}
    assert classify(0, **ok) == (Outcome.SUCCEEDED, "")
    assert classify(3, **ok) == (Outcome.FAILED, "exit code 3")
    assert classify(-signal.SIGKILL, **ok) == (Outcome.FAILED, "killed by signal SIGKILL")
    assert classify(-9, **{**ok, "timed_out": True, "timeout_s": 2.0}) == (
        Outcome.FAILED, "timeout after 2.0s")
    stopped = {**ok, "stop_outcome": Outcome.CANCELLED, "stop_reason": "cancelled"}
    assert classify(-15, **stopped) == (Outcome.CANCELLED, "cancelled")


def test_parse_result() -> None:
    assert parse_result(None) == (None, "")
    assert parse_result(b"  \n") == (None, "")
    assert parse_result(b'{"a": [1, 2]}\n') == ({"a": [1, 2]}, "")
    value, err = parse_result(b"{nope")
    assert value is None and err.startswith("result is not valid JSON")
    value, err = parse_result(b'"' + b"x" * 70_000 + b'"')
    assert value is None and "64 KiB" in err


def test_parse_error_and_tail() -> None:
    assert parse_error(b'{"type": "KeyError", "message": "\'k\'"}') == "KeyError: 'k'"
    assert parse_error(b'{"type": "StopIteration", "message": ""}') == "StopIteration"
    assert parse_error(b"garbage") == "" and parse_error(None) == ""
    assert tail_text(b"abc\xffdef", 4) == "\ufffddef"


def test_paths_stay_inside_the_data_dir() -> None:
    m = TaskMessage(msg_id="1-0", stream="s", run="../../etc", node="a/b", attempt=2, tpl="a",
                    batch="", spec=TaskSpec(node="a", executor="noop"))
    p = AttemptPaths.for_task(Path("/data"), m)
    assert p.log == Path("/data/logs/.._.._etc/a_b/attempt-2.log")
    assert p.work == Path("/data/work/.._.._etc/a_b.2")
    assert safe_part("..") == "_.." and safe_part("") == "_" and safe_part("sim.3") == "sim.3"


def test_settings_validation() -> None:
    s = WorkerSettings(redis_url="redis://x")
    assert s.classes == ["cpu"] and s.slots == 1 and s.heartbeat_interval_s == 2.0
    assert s.runner_id.count("-") >= 2
    assert default_runner_id() != default_runner_id()
    for bad in ({"slots": 0}, {"classes": []}, {"classes": ["CPU"]}, {"runner_id": "a:b"},
                {"heartbeat_ttl_s": 1.0, "heartbeat_interval_s": 2.0}):
        with pytest.raises(ValueError):
            WorkerSettings(redis_url="redis://x", **bad)


def test_cli_parses_flags_and_environment() -> None:
    env = {"DAGBROKER_REDIS_URL": "redis://env:1/0", "DAGBROKER_HOME": "/h"}
    s, verbose = parse_settings(
        ["--classes", "cpu, gpu", "--slots", "3", "--id", "w1", "--label", "site=lab",
         "--label", "rack=a=b", "--heartbeat-ttl", "12", "--grace-period", "4", "--log-json"],
        env,
    )
    assert (s.redis_url, s.classes, s.slots) == ("redis://env:1/0", ["cpu", "gpu"], 3)
    assert s.runner_id == "w1"
    assert s.labels == {"site": "lab", "rack": "a=b"} and s.data_dir == "/h"
    assert (s.heartbeat_ttl_s, s.grace_period_s, s.log_json, verbose) == (12.0, 4.0, True, False)
    assert s.heartbeat_interval_s == 2.0
    short, _ = parse_settings(["--heartbeat-ttl", "1.5"], env)
    assert short.heartbeat_interval_s == 0.5  # at least three beats per TTL


def test_cli_requires_a_redis_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings([], {})
    assert "--redis-url" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_settings(["--redis-url", "redis://x", "--slots", "0"], {})


def test_json_log_lines_carry_task_ids() -> None:
    rec = logging.LogRecord("worker.x", logging.INFO, __file__, 1, "ran %s", ("it",), None)
    rec.run, rec.node, rec.attempt = "r1", "a", 2
    line = json.loads(JsonFormatter(runner="w1").format(rec))
    assert line["runner"] == "w1"
    assert line["msg"] == "ran it" and line["level"] == "info" and line["logger"] == "worker.x"
    assert (line["run"], line["node"], line["attempt"]) == ("r1", "a", 2)
    assert line["ts"].endswith("Z")


def test_tasks_do_not_inherit_worker_settings() -> None:
    env = {"PATH": "/bin", "DAGBROKER_REDIS_URL": "redis://:pw@h/0", "HOME": "/root"}
    assert task_base_env(env) == {"PATH": "/bin", "HOME": "/root"}


def test_redact_url() -> None:
    assert redact_url("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_stream_replies_and_bad_entries() -> None:
    resp2 = [["q1", [("1-0", {"a": "1"})]], ["q2", [("2-0", {"b": "2"})]]]
    assert flatten_reply(resp2) == [("q1", "1-0", {"a": "1"}), ("q2", "2-0", {"b": "2"})]
    assert flatten_reply({"q1": [[("1-0", {"a": "1"})]]}) == [("q1", "1-0", {"a": "1"})]
    assert flatten_reply(None) == []
    good, bad = decode_entries([("q", "1-0", {"run": "r"})])
    assert good == [] and bad == [("q", "1-0", {"run": "r"})]


def test_pyrun_helpers() -> None:
    assert resolve("json:dumps")([1]) == "[1]"
    assert resolve("os.path:join")("a", "b") == "a/b"
    with pytest.raises(ValueError):
        resolve("json")

    def f(x: int, inputs: dict[str, int]) -> int:
        return x + inputs["p"]

    async def g(x: int) -> int:
        return x * 2

    assert accepts_inputs(f) and not accepts_inputs(g)
    assert call(f, {"x": 1}, {"p": 2}) == 3
    assert call(g, {"x": 4}, {"p": 2}) == 8
