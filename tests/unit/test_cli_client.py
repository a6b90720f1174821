"""The client verbs: pure parts, and the verbs against a tiny canned-JSON HTTP server."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.cli import client as cli
from broker.cli.client import (
    BrokerClient,
    ClientError,
    ProgressPrinter,
    RunWatcher,
    Unreachable,
    add_client_commands,
    format_counts,
    format_duration_ms,
    format_progress,
    format_status,
    format_task_failure,
    parse_param,
    parse_params,
    progress_key,
    resolve_token,
    resolve_url,
)

NOON_S = time.mktime((2026, 11, 22, 12, 0, 1, 0, 0, -1))  # 12:00:01 local time

# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("n=3", ("n", 3)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("flag=true", ("flag", True)),
        ("nothing=null", ("nothing", None)),
        ("list=[1, 2]", ("list", [1, 2])),
        ('obj={"a": 1}', ("obj", {"a": 1})),
        ('quoted="3"', ("quoted", "3")),
        ("word=hello", ("word", "hello")),
        ("path=/tmp/x y", ("path", "/tmp/x y")),
        ("empty=", ("empty", "")),
        ("eq=a=b", ("eq", "a=b")),
        ("nan=NaN", ("nan", "NaN")),
        (" spaced =1", ("spaced", 1)),
    ],
)
def test_parse_param(item: str, expected: tuple[str, Any]) -> None:
    assert parse_param(item) == expected


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_parse_param_rejects_missing_key(item: str) -> None:
    with pytest.raises(ClientError, match="KEY=VALUE"):
        parse_param(item)


def test_parse_params_last_wins() -> None:
    assert parse_params(["a=1", "b=x", "a=2"]) == {"a": 2, "b": "x"}


# -- where the broker is ----------------------------------------------------------------------


def test_resolve_url_order(tmp_path: Path) -> None:
    env = {"DAGBROKER_HOME": str(tmp_path)}
    assert resolve_url(None, env) == "http://127.0.0.1:8250"
    (tmp_path / "broker.json").write_text(json.dumps({"url": "http://10.0.0.5:9000/"}))
    assert resolve_url(None, env) == "http://10.0.0.5:9000"
    env["DAGBROKER_URL"] = "http://env-host:8250"
    assert resolve_url(None, env) == "http://env-host:8250"
    assert resolve_url("flag-host:1234", env) == "http://flag-host:1234"


def test_resolve_url_ignores_a_broken_address_file(tmp_path: Path) -> None:
    (tmp_path / "broker.json").write_text("{not json")
    assert resolve_url(None, {"DAGBROKER_HOME": str(tmp_path)}) == "http://127.0.0.1:8250"
    (tmp_path / "broker.json").write_text('["a list"]')
    assert resolve_url(None, {"DAGBROKER_HOME": str(tmp_path)}) == "http://127.0.0.1:8250"


def test_resolve_url_default_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".dagbroker").mkdir()
    (tmp_path / ".dagbroker" / "broker.json").write_text('{"url": "http://127.0.0.1:8999"}')
    assert resolve_url(None, {}) == "http://127.0.0.1:8999"


def test_resolve_token(tmp_path: Path) -> None:
    env = {"DAGBROKER_HOME": str(tmp_path)}
    assert resolve_token(None, env) is None
    (tmp_path / "broker.json").write_text('{"url": "x", "token": "from-file"}')
    assert resolve_token(None, env) == "from-file"
    env["DAGBROKER_TOKEN"] = "from-env"
    assert resolve_token(None, env) == "from-env"
    assert resolve_token("from-flag", env) == "from-flag"


# -- formatting -----------------------------------------------------------------------------------


def test_progress_line() -> None:
    run = {"id": "r123", "state": "running", "total": 10,
           "counts": {"succeeded": 3, "running": 2, "ready": 5}}
    assert format_progress(run, NOON_S) == (
        "12:00:01 run r123 running  succeeded 3/10 running 2 ready 5 failed 0"
    )


def test_progress_line_shows_other_states_only_when_present() -> None:
    counts = {"succeeded": 1, "failed": 1, "upstream_failed": 2, "pending": 0, "weird": 1}
    assert format_counts(counts, 5) == (
        "succeeded 1/5 running 0 ready 0 failed 1 upstream_failed 2 weird 1"
    )
    assert format_counts({"succeeded": 2, "pending": 2}) == (
        "succeeded 2/4 running 0 ready 0 failed 0 pending 2"
    )


def test_progress_key_of_a_finished_run_carries_the_reason() -> None:
    run = {"id": "r1", "state": "failed", "total": 2, "counts": {"failed": 1, "succeeded": 1},
           "reason": "task b failed"}
    assert progress_key(run) == (
        "run r1 failed   succeeded 1/2 running 0 ready 0 failed 1 (task b failed)"
    )


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "-"), (-5, "-"), (0, "0.0s"), (870, "0.9s"), (59_940, "59.9s"), (59_960, "1m00s"),
     (75_000, "1m15s"), (3_599_000, "59m59s"), (3_599_700, "1h00m"), (7_380_000, "2h03m")],
)
def test_format_duration(ms: float | None, text: str) -> None:
    assert format_duration_ms(ms) == text


def test_task_failure_line() -> None:
    task = {"id": "build", "state": "failed", "attempt": 2, "exit_code": 1, "runner": "host-a",
            "reason": "exit code 1"}
    assert format_task_failure(task, NOON_S) == (
        "12:00:01 task build failed (attempt 2, exit 1, runner host-a): exit code 1"
    )
    assert format_task_failure({"id": "x", "attempt": 1}, NOON_S) == (
        "12:00:01 task x failed (attempt 1)"
    )


STATUS = {
    "run": {"id": "r123", "name": "diamond", "revision": "0123456789abcdef", "state": "running",
            "priority": 5, "created_at": 1_000, "started_at": 2_000, "finished_at": None,
            "total": 3, "counts": {"succeeded": 1, "running": 1, "failed": 1}, "reason": None},
    "tasks": [
        {"id": "a", "state": "succeeded", "attempt": 1, "class": "cpu", "priority": 5,
         "runner": "host-a", "exit_code": 0, "reason": None, "started_at": 2_000,
         "finished_at": 3_500, "result": None},
        {"id": "b", "state": "running", "attempt": 1, "class": "cpu", "priority": 5,
         "runner": "host-b", "exit_code": None, "reason": None, "started_at": 4_000,
         "finished_at": None, "result": None},
        {"id": "c", "state": "failed", "attempt": 3, "class": "cpu", "priority": 5,
         "runner": "host-a", "exit_code": 2, "reason": "exit code 2", "started_at": 4_000,
         "finished_at": 5_000, "result": None},
    ],
}


def test_status_table() -> None:
    lines = format_status(STATUS, now_ms=64_000).splitlines()
    assert lines[0].split() == ["TASK", "STATE", "ATTEMPT", "RUNNER", "EXIT", "DURATION", "REASON"]
    assert lines[1].split() == ["a", "succeeded", "1", "host-a", "0", "1.5s"]
    assert lines[2].split() == ["b", "running", "1", "host-b", "-", "1m00s"]
    assert lines[3].split() == ["c", "failed", "3", "host-a", "2", "1.0s", "exit", "code", "2"]
    assert len({line.index("STATE") for line in lines[:1]}) == 1
    assert lines[1].index("succeeded") == lines[0].index("STATE")  # aligned columns
    assert lines[5] == "run r123  diamond@0123456789ab  running  priority 5"
    assert "running for 1m02s" in lines[6]
    assert lines[7] == "succeeded 1/3 running 1 ready 0 failed 1"


def test_tty_printer_rewrites_one_line() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    printer.update("12:00:01 a", "a")
    printer.update("12:00:02 a", "a")  # no change: nothing printed
    printer.message("task x failed")
    printer.update("12:00:03 b", "b")
    printer.close()
    assert out.getvalue() == (
        "\r\x1b[K12:00:01 a" "\r\x1b[Ktask x failed\n12:00:01 a" "\r\x1b[K12:00:03 b" "\n"
    )


def test_plain_printer_prints_lines() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer.update("12:00:01 a", "a")
    printer.update("12:00:02 a", "a")
    printer.message("task x failed")
    printer.update("12:00:03 b", "b")
    printer.close()
    assert out.getvalue() == "12:00:01 a\ntask x failed\n12:00:03 b\n"


class ScriptedClient(BrokerClient):
    """Answers status() from a script; an exception in the script is raised instead."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.script = script

    def status(self, run: str, tasks: bool = True) -> Any:
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_watch_survives_a_broker_restart() -> None:
    down = Unreachable("cannot reach the broker", {"reason": "Connection refused"})
    client = ScriptedClient([
        {"run": run_doc("running", {"running": 1, "pending": 3})}, down, down,
        {"run": run_doc("succeeded", {"succeeded": 4})},
    ])
    out = io.StringIO()
    naps: list[float] = []
    final = RunWatcher(client, "r1abc", ProgressPrinter(out, tty=False), clock=lambda: NOON_S,
                       sleep=naps.append).watch()
    assert final["run"]["state"] == "succeeded"
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("12:00:01 lost contact with the broker (Connection refused)")
    assert lines[2] == "12:00:01 reconnected to the broker"
    assert len(lines) == 4
    assert naps == [cli.WATCH_INTERVAL_S] * 3


# -- the verbs against a canned HTTP server -------------------------------------------------------


class FakeBroker:
    """Answers (method, path) with canned (status, body) replies, in order; the last repeats."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)

    def reply(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self.replies[(method, path)] = list(answers)

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append({
                    "method": self.command, "path": parts.path,
                    "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                    "content_type": self.headers.get("Content-Type"),
                    "authorization": self.headers.get("Authorization"), "body": body,
                })
                queue = fake.replies.get((self.command, parts.path))
                if not queue:
                    status, doc = 404, {"error": {"code": "not_found", "message": "no route",
                                                  "details": {}}}
                else:
                    status, doc = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        return Handler


@pytest.fixture
def fake_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeBroker]:
    fake = FakeBroker()
    fake.thread.start()
    monkeypatch.setenv("DAGBROKER_URL", fake.url)
    monkeypatch.setenv("DAGBROKER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGBROKER_TOKEN", raising=False)
    monkeypatch.setattr(cli, "WATCH_INTERVAL_S", 0.001)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def dagbroker(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dagbroker")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def run_doc(state: str, counts: dict[str, int], **extra: Any) -> dict[str, Any]:
    run = {"id": "r1abc", "name": "diamond", "revision": "f" * 40, "state": state, "priority": 0,
           "created_at": 1_000, "started_at": 1_000, "finished_at": None, "total": 4,
           "counts": counts, "reason": None}
    run.update(extra)
    return run


WORKFLOW = {"name": "diamond", "nodes": {"a": {"command": "true"}}}


def test_publish_sends_the_file(fake_broker: FakeBroker, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "diamond.json"
    path.write_text(json.dumps(WORKFLOW))
    fake_broker.reply("POST", "/api/v1/workflow/publish",
                      (201, {"name": "diamond", "revision": "abc123", "nodes": 4}))
    assert dagbroker("publish", str(path), "--message", "first try") == 0
    (call,) = fake_broker.calls("POST", "/api/v1/workflow/publish")
    assert call["body"] == path.read_bytes()
    assert call["content_type"] == "application/json"
    assert call["query"] == {"message": "first try"}
    assert capsys.readouterr().out == "published diamond at revision abc123 (4 nodes)\n"


def test_publish_yaml_and_token(fake_broker: FakeBroker, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wf.yml"
    path.write_text("name: diamond\nnodes: {a: {command: 'true'}}\n")
    monkeypatch.setenv("DAGBROKER_TOKEN", "s3cret")
    fake_broker.reply("POST", "/api/v1/workflow/publish",
                      (201, {"name": "diamond", "revision": "abc123", "nodes": 1}))
    assert dagbroker("publish", str(path)) == 0
    (call,) = fake_broker.calls("POST", "/api/v1/workflow/publish")
    assert call["content_type"] == "application/yaml"
    assert call["query"] == {}
    assert call["authorization"] == "Bearer s3cret"


def test_run_by_name(fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    fake_broker.reply("POST", "/api/v1/workflow/execute",
                      (201, {"run": "r1abc", "name": "diamond", "revision": "f" * 40,
                             "tasks": 4}))
    code = dagbroker("run", "diamond", "--param", "n=3", "-p", "label=big run",
                     "--param", "xs=[1,2]", "--revision", "abc123", "--priority", "7")
    assert code == 0
    (call,) = fake_broker.calls("POST", "/api/v1/workflow/execute")
    assert json.loads(call["body"]) == {
        "name": "diamond", "revision": "abc123", "priority": 7,
        "params": {"n": 3, "label": "big run", "xs": [1, 2]},
    }
    assert call["content_type"] == "application/json"
    assert capsys.readouterr().out == "r1abc\n"


def test_run_a_file_publishes_it_then_watches_to_success(
    fake_broker: FakeBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "diamond.json"
    path.write_text(json.dumps(WORKFLOW))
    fake_broker.reply("POST", "/api/v1/workflow/publish",
                      (201, {"name": "diamond", "revision": "b" * 40, "nodes": 4}))
    fake_broker.reply("POST", "/api/v1/workflow/execute",
                      (201, {"run": "r1abc", "name": "diamond", "revision": "b" * 40,
                             "tasks": 4}))
    fake_broker.reply(
        "GET", "/api/v1/workflow/status",
        (200, {"run": run_doc("running", {"ready": 1, "pending": 3})}),
        (200, {"run": run_doc("running", {"ready": 1, "pending": 3})}),
        (200, {"run": run_doc("running", {"succeeded": 1, "running": 2, "pending": 1})}),
        (200, {"run": run_doc("succeeded", {"succeeded": 4}, finished_at=13_500)}),
    )
    assert dagbroker("run", str(path), "--watch") == 0
    (execute,) = fake_broker.calls("POST", "/api/v1/workflow/execute")
    assert json.loads(execute["body"]) == {"name": "diamond", "revision": "b" * 40}
    polls = fake_broker.calls("GET", "/api/v1/workflow/status")
    assert all(p["query"] == {"run": "r1abc", "tasks": "0"} for p in polls)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "r1abc"
    progress = [line.split(" ", 1)[1] for line in out[1:-1]]
    assert progress == [
        "run r1abc running  succeeded 0/4 running 0 ready 1 failed 0 pending 3",
        "run r1abc running  succeeded 1/4 running 2 ready 0 failed 0 pending 1",
        "run r1abc succeeded succeeded 4/4 running 0 ready 0 failed 0",
    ]
    assert out[-1] == "run r1abc succeeded in 12.5s"


def test_watch_reports_failed_tasks_and_exits_1(
    fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    failed_task = {"id": "b", "state": "failed", "attempt": 3, "runner": "host-a",
                   "exit_code": 2, "reason": "exit code 2", "started_at": 1, "finished_at": 2}
    fake_broker.reply("POST", "/api/v1/workflow/execute",
                      (201, {"run": "r1abc", "name": "diamond", "revision": "f" * 40,
                             "tasks": 4}))
    failed_run = run_doc("failed", {"succeeded": 1, "failed": 1, "upstream_failed": 2},
                         reason="task b failed", finished_at=2_000)
    fake_broker.reply(
        "GET", "/api/v1/workflow/status",
        (200, {"run": run_doc("running", {"succeeded": 1, "failed": 1, "pending": 2})}),
        (200, {"run": run_doc("running", {"succeeded": 1, "failed": 1, "pending": 2}),
               "tasks": [failed_task]}),
        (200, {"run": failed_run}),
    )
    assert dagbroker("run", "diamond", "-w") == 1
    out = capsys.readouterr().out.splitlines()
    failure_lines = [line for line in out if " task " in line]
    assert len(failure_lines) == 1
    assert failure_lines[0].endswith(
        "task b failed (attempt 3, exit 2, runner host-a): exit code 2")
    assert out[-1] == "run r1abc failed in 1.0s"
    # only the poll after the failed count grew asked for the tasks
    with_tasks = [p for p in fake_broker.calls("GET", "/api/v1/workflow/status")
                  if "tasks" not in p["query"]]
    assert len(with_tasks) == 1


def test_status_prints_table_and_summary(
    fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_broker.reply("GET", "/api/v1/workflow/status", (200, STATUS))
    assert dagbroker("status", "r123") == 0
    (call,) = fake_broker.calls("GET", "/api/v1/workflow/status")
    assert call["query"] == {"run": "r123"}
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("TASK")
    assert "run r123  diamond@0123456789ab  running  priority 5" in out


def test_status_json(fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    fake_broker.reply("GET", "/api/v1/workflow/status", (200, STATUS))
    assert dagbroker("status", "r123", "--json") == 0
    assert json.loads(capsys.readouterr().out) == STATUS


def test_cancel(fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    fake_broker.reply("POST", "/api/v1/workflow/cancel", (200, {"run": "r1abc",
                                                                "state": "cancelled"}))
    assert dagbroker("cancel", "r1abc") == 0
    (call,) = fake_broker.calls("POST", "/api/v1/workflow/cancel")
    assert json.loads(call["body"]) == {"run": "r1abc"}
    assert capsys.readouterr().out == "run r1abc: cancelled\n"


def test_api_error_is_printed_with_exit_2(
    fake_broker: FakeBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{}")
    fake_broker.reply("POST", "/api/v1/workflow/publish", (422, {"error": {
        "code": "invalid_workflow", "message": "node 'b': unknown dependency 'z'",
        "details": {"node": "b", "field": "after"}}}))
    assert dagbroker("publish", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: node 'b': unknown dependency 'z'\n"
        '  {"node":"b","field":"after"}\n'
    )


def test_non_json_error_body(fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    fake_broker.reply("POST", "/api/v1/workflow/cancel", (502, "bad gateway"))
    assert dagbroker("cancel", "r1abc") == 2
    assert capsys.readouterr().err.startswith("error: HTTP 502")


def test_bad_param_exits_2(fake_broker: FakeBroker, capsys: pytest.CaptureFixture[str]) -> None:
    assert dagbroker("run", "diamond", "--param", "oops") == 2
    assert "--param expects KEY=VALUE" in capsys.readouterr().err
    assert fake_broker.requests == []


def test_missing_file_is_a_name(fake_broker: FakeBroker) -> None:
    fake_broker.reply("POST", "/api/v1/workflow/execute",
                      (404, {"error": {"code": "not_found", "message": "no workflow 'x.json'",
                                       "details": {}}}))
    assert dagbroker("run", "x.json") == 2
    assert fake_broker.calls("POST", "/api/v1/workflow/publish") == []


def test_unreachable_broker_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()  # nobody listens on that port any more
    assert dagbroker("status", "r1abc", "--url", url) == 3
    err = capsys.readouterr().err
    assert f"cannot reach the broker at {url} (is `dagbroker serve` running?)" in err
    assert "refused" in err.lower()


def test_url_flag_beats_environment(fake_broker: FakeBroker,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGBROKER_URL", "http://127.0.0.1:1")
    fake_broker.reply("POST", "/api/v1/workflow/cancel", (200, {"run": "r1", "state": "x"}))
    assert dagbroker("cancel", "r1", "--url", fake_broker.url) == 0


def test_client_ignores_proxies_for_loopback(fake_broker: FakeBroker,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    fake_broker.reply("POST", "/api/v1/workflow/cancel", (200, {"run": "r1", "state": "x"}))
    assert BrokerClient(fake_broker.url).cancel("r1") == {"run": "r1", "state": "x"}


def test_format_eta() -> None:
    from broker.cli.client import format_eta

    now = 1_800_000_000.0
    assert format_eta({"eta": (now + 185) * 1000, "unserved_classes": []}, now).endswith(
        "(in 3m05s)")
    assert format_eta({"eta": None, "unserved_classes": ["gpu"]}, now) == (
        "ETA unknown (no runner serves gpu)")
    assert "partly unknown" in format_eta(
        {"eta": (now + 5) * 1000, "unserved_classes": [], "unknown_durations": 2}, now)
