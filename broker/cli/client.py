"""Client verbs of `dagbroker`: publish, run, status, cancel, redo.

They talk to the broker's REST API with the standard library only (`urllib.request`), so the
client works on a machine that has none of the server's dependencies installed.

Exit codes: 0 ok (for `run/redo --watch`: the run succeeded), 1 the watched run failed or was
cancelled, 2 the broker refused the request (or bad arguments), 3 no broker answered,
130 interrupted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from broker import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

DEFAULT_URL = "http://127.0.0.1:8250"
API_PREFIX = "/api/v1"
ADDRESS_FILE = "broker.json"

HTTP_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.5
WATCH_RECONNECT_S = 60.0  # a watch survives a broker restart this long
ETA_INTERVAL_S = 5.0  # how often a watch refreshes the run's estimate

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_ERROR = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

# The state names of broker.wire (RunState, TaskState), spelled out here so that the client
# does not import the server's dependencies.
RUN_SUCCEEDED = "succeeded"
TERMINAL_RUN_STATES = frozenset({"succeeded", "failed", "cancelled"})
TASK_FAILED = "failed"
TASK_RUNNING = "running"
ALWAYS_COUNTED = ("running", "ready", "failed")  # shown even at 0, after succeeded n/total
COUNTED_IF_ANY = ("pending", "dispatched", "retry_wait", "waiting", "upstream_failed",
                  "cancelled")

YAML_SUFFIXES = frozenset({".yaml", ".yml"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CLEAR_LINE = "\r\x1b[K"


# -- errors -----------------------------------------------------------------------------------


class ClientError(Exception):
    """A client verb failed; `exit_code` is what the command returns."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class ApiError(ClientError):
    """The broker answered with a non-2xx status (and, normally, an error document)."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message, details)
        self.status = status
        self.code = code


class Unreachable(ClientError):
    """No broker answered at the URL."""

    exit_code = EXIT_UNREACHABLE


def format_error(error: ClientError) -> str:
    """`error: <message>`, then the details as one line of compact JSON."""
    text = f"error: {error.message}"
    if error.details:
        text += "\n  " + json.dumps(
            error.details, separators=(",", ":"), ensure_ascii=False, default=str
        )
    return text


# -- configuration: where the broker is --------------------------------------------------------


def dagbroker_home(env: Mapping[str, str]) -> Path:
    """$DAGBROKER_HOME, else ~/.dagbroker (the same rule as the server's data dir)."""
    return Path(env.get("DAGBROKER_HOME") or Path.home() / ".dagbroker").expanduser()


def read_address_file(env: Mapping[str, str]) -> dict[str, Any]:
    """The `broker.json` the local server writes; {} if it is missing or unreadable."""
    try:
        data = json.loads((dagbroker_home(env) / ADDRESS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def resolve_url(flag: str | None, env: Mapping[str, str]) -> str:
    """--url, else $DAGBROKER_URL, else {home}/broker.json, else http://127.0.0.1:8250."""
    for candidate in (flag, env.get("DAGBROKER_URL"), read_address_file(env).get("url")):
        if isinstance(candidate, str) and candidate.strip():
            return normalize_url(candidate)
    return DEFAULT_URL


def resolve_token(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--token, else $DAGBROKER_TOKEN, else a "token" in {home}/broker.json, else none."""
    for candidate in (flag, env.get("DAGBROKER_TOKEN"), read_address_file(env).get("token")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


# -- parameters ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: keep the text as a string


def parse_param(item: str) -> tuple[str, Any]:
    """`KEY=VALUE`: VALUE is JSON if it parses (3, true, [1,2], "x"), else the plain string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ClientError(f"--param expects KEY=VALUE, got {item!r}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        value = text
    return key, value


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """All --param values; a key given twice keeps the last value."""
    return dict(parse_param(item) for item in items)


# -- formatting (pure) ----------------------------------------------------------------------------


def format_duration_ms(duration_ms: float | None) -> str:
    """870 → 0.9s, 75_000 → 1m15s, 7_380_000 → 2h03m; None → -."""
    if duration_ms is None or duration_ms < 0 or math.isnan(duration_ms):
        return "-"
    seconds = duration_ms / 1000
    if seconds < 59.95:  # 59.96 would print as "60.0s"
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_clock(at_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at_s))


def format_timestamp_ms(at_ms: float | None) -> str:
    if not at_ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at_ms / 1000))


def _count(counts: Mapping[str, Any], state: str) -> int:
    try:
        return int(counts.get(state) or 0)
    except (TypeError, ValueError):
        return 0


def format_counts(counts: Mapping[str, Any], total: int | None = None) -> str:
    """`succeeded 3/10 running 2 ready 5 failed 0`, then any other state that is non-zero."""
    if total is None:
        total = sum(_count(counts, state) for state in counts)
    parts = [f"succeeded {_count(counts, 'succeeded')}/{total}"]
    parts += [f"{state} {_count(counts, state)}" for state in ALWAYS_COUNTED]
    known = {"succeeded", *ALWAYS_COUNTED, *COUNTED_IF_ANY}
    extra = [*COUNTED_IF_ANY, *sorted(set(counts) - known)]
    parts += [f"{state} {_count(counts, state)}" for state in extra if _count(counts, state)]
    return " ".join(parts)


def progress_key(run: Mapping[str, Any]) -> str:
    """The progress line without its clock: a new line is printed only when this changes."""
    counts = run.get("counts") or {}
    total = run.get("total")
    line = f"run {run.get('id', '?')} {run.get('state', '?'):<8} "
    line += format_counts(counts, int(total) if total is not None else None)
    if run.get("state") in TERMINAL_RUN_STATES and run.get("reason"):
        line += f" ({run['reason']})"
    return line


def format_progress(run: Mapping[str, Any], now_s: float) -> str:
    """`12:00:01 run r123 running  succeeded 3/10 running 2 ready 5 failed 0`."""
    return f"{format_clock(now_s)} {progress_key(run)}"


def format_eta(eta: Mapping[str, Any], now_s: float) -> str:
    """`ETA 12:04:10 (in 3m05s)` from GET /runs/{id}/eta; why not, when there is none."""
    if eta.get("unserved_classes"):
        return f"ETA unknown (no runner serves {', '.join(eta['unserved_classes'])})"
    if eta.get("eta") is None:
        return "ETA unknown"
    left_s = max(0.0, eta["eta"] / 1000 - now_s)
    minutes, seconds = divmod(int(left_s), 60)
    left = f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    guess = " (partly unknown durations)" if eta.get("unknown_durations") else ""
    return f"ETA {format_clock(eta['eta'] / 1000)} (in {left}){guess}"


def format_task_failure(task: Mapping[str, Any], now_s: float) -> str:
    """`12:00:03 task build failed (attempt 2, exit 1, runner host-a): reason`."""
    facts = [f"attempt {task.get('attempt', '?')}"]
    if task.get("exit_code") is not None:
        facts.append(f"exit {task['exit_code']}")
    if task.get("runner"):
        facts.append(f"runner {task['runner']}")
    line = f"{format_clock(now_s)} task {task.get('id', '?')} failed ({', '.join(facts)})"
    return f"{line}: {task['reason']}" if task.get("reason") else line


def task_duration_ms(task: Mapping[str, Any], now_ms: float) -> float | None:
    started = task.get("started_at")
    if not started:
        return None
    finished = task.get("finished_at")
    if finished:
        return float(finished) - float(started)
    return now_ms - float(started) if task.get("state") == TASK_RUNNING else None


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_task_table(tasks: Sequence[Mapping[str, Any]], now_ms: float) -> list[str]:
    """Aligned rows: TASK STATE ATTEMPT RUNNER EXIT DURATION (and REASON when any task has one)."""
    headers = ["TASK", "STATE", "ATTEMPT", "RUNNER", "EXIT", "DURATION"]
    with_reason = any(t.get("reason") for t in tasks)
    if with_reason:
        headers.append("REASON")
    rows = [headers]
    for t in tasks:
        exit_code = t.get("exit_code")
        row = [
            str(t.get("id", "?")), str(t.get("state", "?")), str(t.get("attempt") or 0),
            str(t.get("runner") or "-"), "-" if exit_code is None else str(exit_code),
            format_duration_ms(task_duration_ms(t, now_ms)),
        ]
        if with_reason:
            row.append(_short(str(t.get("reason") or ""), 60))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def format_run_summary(run: Mapping[str, Any], now_ms: float) -> list[str]:
    """Who/what/state, the times, the counts, and the reason of a finished run."""
    revision = str(run.get("revision") or "")[:12]
    lines = [
        f"run {run.get('id', '?')}  {run.get('name', '?')}@{revision or '?'}  "
        f"{run.get('state', '?')}  priority {run.get('priority', 0)}"
    ]
    times = [f"created {format_timestamp_ms(run.get('created_at'))}"]
    started, finished = run.get("started_at"), run.get("finished_at")
    if started:
        times.append(f"started {format_timestamp_ms(started)}")
    if finished:
        times.append(f"finished {format_timestamp_ms(finished)}")
    if started:
        end = float(finished) if finished else now_ms
        times.append(f"{'took' if finished else 'running for'} "
                     f"{format_duration_ms(end - float(started))}")
    lines.append("  ".join(times))
    total = run.get("total")
    lines.append(format_counts(run.get("counts") or {}, int(total) if total is not None else None))
    if run.get("reason"):
        lines.append(f"reason: {run['reason']}")
    return lines


def format_status(status: Mapping[str, Any], now_ms: float) -> str:
    tasks = status.get("tasks") or []
    lines = format_task_table(tasks, now_ms) if tasks else ["(no tasks)"]
    return "\n".join([*lines, "", *format_run_summary(status.get("run") or {}, now_ms)])


def _size(value: Any) -> Any:
    return len(value) if isinstance(value, list | dict) else value


# -- HTTP ---------------------------------------------------------------------------------------


def _decode_error(status: int, reason: str, raw: bytes) -> ApiError:
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        details = err.get("details")
        return ApiError(status, str(err.get("code") or status),
                        str(err.get("message") or f"HTTP {status} {reason}"),
                        details if isinstance(details, dict) else {"details": details}
                        if details else None)
    snippet = raw.decode("utf-8", "replace").strip()[:200]
    return ApiError(status, str(status), f"HTTP {status} {reason}".strip(),
                    {"body": snippet} if snippet else None)


def _reason_text(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


class BrokerClient:
    """A blocking JSON client of the REST API at `url` (no proxy for a loopback broker)."""

    def __init__(self, url: str, token: str | None = None,
                 timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.url = normalize_url(url)
        self.token = token
        self.timeout_s = timeout_s
        host = urllib.parse.urlsplit(self.url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK_HOSTS else []
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: bytes | None = None, content_type: str = "application/json") -> Any:
        """Send one request to `{url}/api/v1/{path}`; the decoded JSON answer, or raise."""
        url = f"{self.url}{API_PREFIX}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": f"dagbroker-cli/{__version__}"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except OSError:
                raw = b""
            finally:
                e.close()
            raise _decode_error(e.code, str(e.reason or ""), raw) from e
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from e
        except (OSError, http.client.HTTPException) as e:
            raise self._unreachable(e) from e
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise ClientError(f"the broker at {self.url} sent a response that is not JSON",
                              {"path": path, "body": raw[:200].decode("utf-8", "replace")}) from e

    def _unreachable(self, reason: object) -> Unreachable:
        return Unreachable(
            f"cannot reach the broker at {self.url} (is `dagbroker serve` running?)",
            {"reason": _reason_text(reason)},
        )

    def post_json(self, path: str, doc: Mapping[str, Any]) -> Any:
        return self.request("POST", path, body=json.dumps(doc).encode())

    def publish(self, document: bytes, content_type: str, message: str | None = None,
                base: str | None = None, name: str | None = None) -> Any:
        query = {k: v for k, v in (("message", message), ("base", base), ("name", name)) if v}
        return self.request("POST", "workflow/publish", query=query or None, body=document,
                            content_type=content_type)

    def execute(self, name: str, revision: str | None = None,
                params: Mapping[str, Any] | None = None, priority: int | None = None) -> Any:
        doc: dict[str, Any] = {"name": name}
        if revision:
            doc["revision"] = revision
        if params:
            doc["params"] = dict(params)
        if priority is not None:
            doc["priority"] = priority
        return self.post_json("workflow/execute", doc)

    def status(self, run: str, tasks: bool = True) -> Any:
        query = {"run": run} if tasks else {"run": run, "tasks": "0"}
        return self.request("GET", "workflow/status", query=query)

    def cancel(self, run: str) -> Any:
        return self.post_json("workflow/cancel", {"run": run})

    def redo(self, run: str, node: str) -> Any:
        return self.post_json(f"runs/{urllib.parse.quote(run, safe='')}/redo", {"node": node})


def publish_file(client: BrokerClient, path: Path, message: str | None = None,
                 base: str | None = None) -> Any:
    """Publish a workflow file as-is: YAML for .yaml/.yml, JSON otherwise."""
    try:
        document = path.read_bytes()
    except OSError as e:
        raise ClientError(f"cannot read {path}: {e.strerror or e}") from e
    suffix = path.suffix.lower()
    if suffix == ".nc":  # a Nodeworks chart: the broker converts it; the file name names it
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("._-") or "chart"
        return client.publish(document, "application/x-nodeworks", message, base, name=name)
    content_type = "application/yaml" if suffix in YAML_SUFFIXES else "application/json"
    return client.publish(document, content_type, message, base)


# -- watching a run -------------------------------------------------------------------------------


class ProgressPrinter:
    """One line per change; on a terminal, a single line rewritten in place."""

    def __init__(self, out: IO[str], tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._last_key: str | None = None
        self._line = ""  # the progress line currently shown (TTY)

    def update(self, line: str, key: str) -> None:
        if key == self._last_key:
            return
        self._last_key = key
        if self.tty:
            self._line = line
            self.out.write(CLEAR_LINE + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def message(self, text: str) -> None:
        """A line of its own (a failed task); the progress line is redrawn below it."""
        if self.tty and self._line:
            self.out.write(f"{CLEAR_LINE}{text}\n{self._line}")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._line:
            self.out.write("\n")
            self.out.flush()
        self._line = ""


class RunWatcher:
    """Polls a run's status until it finishes, reporting progress and each failed task."""

    def __init__(self, client: BrokerClient, run_id: str, printer: ProgressPrinter,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.run_id = run_id
        self.printer = printer
        self.clock = clock
        self.sleep = sleep
        self._failed_seen: set[str] = set()
        self._failed_count = 0
        self._lost_since: float | None = None
        self._eta_text = ""
        self._eta_at = 0.0

    def _eta(self, run: Mapping[str, Any]) -> str:
        """The run's estimate, refreshed every ETA_INTERVAL_S while it runs."""
        if run.get("state") in TERMINAL_RUN_STATES:
            return ""
        now = self.clock()
        if now - self._eta_at >= ETA_INTERVAL_S:
            self._eta_at = now
            try:
                self._eta_text = format_eta(self.client.request(
                    "GET", f"runs/{self.run_id}/eta"), now)
            except ClientError:
                pass  # keep the last estimate; the broker may be restarting
        return self._eta_text

    def watch(self) -> dict[str, Any]:
        """The final status document (the run is succeeded, failed or cancelled)."""
        while True:
            status = self._poll()
            if status is not None:
                run = status.get("run") or {}
                text = format_progress(run, self.clock())
                eta = self._eta(run)
                # the ETA rides along on the line; only progress changes print a new line
                self.printer.update(f"{text}  {eta}" if eta else text, progress_key(run))
                self._report_failures(run)
                if run.get("state") in TERMINAL_RUN_STATES:
                    return dict(status)
            self.sleep(WATCH_INTERVAL_S)

    def _poll(self) -> Any:
        """The run's status without its tasks; None while the broker is briefly unreachable."""
        try:
            status = self.client.status(self.run_id, tasks=False)
        except Unreachable as e:
            now = time.monotonic()
            if self._lost_since is None:
                self._lost_since = now
                self.printer.message(
                    f"{format_clock(self.clock())} lost contact with the broker "
                    f"({e.details.get('reason', '')}); retrying for {WATCH_RECONNECT_S:.0f}s"
                )
            if now - self._lost_since > WATCH_RECONNECT_S:
                raise
            return None
        if self._lost_since is not None:
            self._lost_since = None
            self.printer.message(f"{format_clock(self.clock())} reconnected to the broker")
        return status

    def _report_failures(self, run: Mapping[str, Any]) -> None:
        failed = _count(run.get("counts") or {}, TASK_FAILED)
        if failed <= self._failed_count:
            return
        try:
            tasks = self.client.status(self.run_id).get("tasks") or []
        except Unreachable:
            return  # asked again at the next poll
        self._failed_count = failed
        for task in tasks:
            task_id = str(task.get("id"))
            if task.get("state") == TASK_FAILED and task_id not in self._failed_seen:
                self._failed_seen.add(task_id)
                self.printer.message(format_task_failure(task, self.clock()))


def is_tty(out: IO[str]) -> bool:
    return out.isatty() and os.environ.get("TERM") != "dumb"


def watch_run(client: BrokerClient, run_id: str, out: IO[str], tty: bool) -> tuple[int, Any]:
    """Watch until the run finishes; (exit code, final status). Ctrl-C leaves the run going."""
    printer = ProgressPrinter(out, tty)
    try:
        status = RunWatcher(client, run_id, printer).watch()
    except KeyboardInterrupt:
        printer.close()
        print(f"stopped watching; run {run_id} goes on (`dagbroker cancel {run_id}` stops it)",
              file=sys.stderr)
        return EXIT_INTERRUPTED, None
    finally:
        printer.close()
    run = status.get("run") or {}
    took = ""
    if run.get("started_at") and run.get("finished_at"):
        took = " in " + format_duration_ms(float(run["finished_at"]) - float(run["started_at"]))
    print(f"run {run_id} {run.get('state')}{took}", file=out, flush=True)
    return (EXIT_OK if run.get("state") == RUN_SUCCEEDED else EXIT_RUN_FAILED), status


# -- the verbs ---------------------------------------------------------------------------------


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False), flush=True)


def _publish(args: argparse.Namespace, client: BrokerClient) -> int:
    source = args.from_url or args.file
    if source and source.startswith(("http://", "https://")):  # the broker fetches it
        doc = {k: v for k, v in (("url", source), ("message", args.message),
                                 ("base", args.base)) if v}
        published = client.post_json("workflow/publish", doc)
    elif args.file:
        published = publish_file(client, Path(args.file), args.message, args.base)
    else:
        raise ClientError("give a FILE or --from-url URL")
    if args.json:
        _print_json(published)
    else:
        print(f"published {published.get('name')} at revision {published.get('revision')} "
              f"({_size(published.get('nodes'))} nodes)")
    return EXIT_OK


def _run(args: argparse.Namespace, client: BrokerClient) -> int:
    params = parse_params(args.param or [])
    name, revision = args.workflow, args.revision
    if Path(args.workflow).is_file():
        if revision:
            raise ClientError("--revision cannot be used with a file: the file is published "
                              "and its new revision runs")
        published = publish_file(client, Path(args.workflow), args.message)
        name, revision = published["name"], published["revision"]
        print(f"published {name} at revision {revision}", file=sys.stderr)
    started = client.execute(name, revision, params, args.priority)
    run_id = str(started["run"])
    if args.json:
        print(json.dumps(started, ensure_ascii=False), flush=True)
    else:
        print(f"started {started.get('name', name)}@{str(started.get('revision', ''))[:12]} "
              f"({_size(started.get('tasks'))} tasks); run id:", file=sys.stderr)
        print(run_id, flush=True)
    if not args.watch:
        return EXIT_OK
    # With --json, stdout carries only JSON: progress goes to stderr.
    out = sys.stderr if args.json else sys.stdout
    code, final = watch_run(client, run_id, out, tty=is_tty(out) and not args.json)
    if args.json and final is not None:
        _print_json(final)
    return code


def _status(args: argparse.Namespace, client: BrokerClient) -> int:
    status = client.status(args.run_id)
    if args.json:
        _print_json(status)
    else:
        print(format_status(status, time.time() * 1000))
    return EXIT_OK


def _cancel(args: argparse.Namespace, client: BrokerClient) -> int:
    answer = client.cancel(args.run_id)
    if args.json:
        _print_json(answer)
    else:
        print(f"run {answer.get('run', args.run_id)}: {answer.get('state')}")
    return EXIT_OK


def _redo(args: argparse.Namespace, client: BrokerClient) -> int:
    answer = client.redo(args.run_id, args.node)
    run_id = str(answer["run"])
    if args.json:
        print(json.dumps(answer, ensure_ascii=False), flush=True)
    else:
        print(f"redo of {args.run_id} from {args.node}: {_size(answer.get('rerun'))} task(s) "
              f"run again, {_size(answer.get('reused'))} reused; run id:", file=sys.stderr)
        print(run_id, flush=True)
    if not args.watch:
        return EXIT_OK
    out = sys.stderr if args.json else sys.stdout
    code, final = watch_run(client, run_id, out, tty=is_tty(out) and not args.json)
    if args.json and final is not None:
        _print_json(final)
    return code


def _run_verb(verb: Callable[[argparse.Namespace, BrokerClient], int],
              args: argparse.Namespace) -> int:
    """The edge: settings from flags and environment, errors to stderr with an exit code."""
    env = os.environ
    try:
        client = BrokerClient(resolve_url(getattr(args, "url", None), env),
                              resolve_token(getattr(args, "token", None), env))
        return verb(args, client)
    except ClientError as e:
        sys.stdout.flush()
        print(format_error(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_publish(args: argparse.Namespace) -> int:
    """`dagbroker publish FILE [--message M]`."""
    return _run_verb(_publish, args)


def cmd_run(args: argparse.Namespace) -> int:
    """`dagbroker run NAME_OR_FILE [--param k=v ...] [--revision R] [--priority P] [--watch]`."""
    return _run_verb(_run, args)


def cmd_status(args: argparse.Namespace) -> int:
    """`dagbroker status RUN [--json]`."""
    return _run_verb(_status, args)


def cmd_cancel(args: argparse.Namespace) -> int:
    """`dagbroker cancel RUN`."""
    return _run_verb(_cancel, args)


def cmd_redo(args: argparse.Namespace) -> int:
    """`dagbroker redo RUN NODE [--watch]`."""
    return _run_verb(_redo, args)


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a global --url parsed before the verb is not overwritten by a default here.
    common.add_argument(
        "--url", default=argparse.SUPPRESS,
        help=f"broker URL (default: $DAGBROKER_URL, else the url in $DAGBROKER_HOME/"
             f"{ADDRESS_FILE} written by a local server, else {DEFAULT_URL})",
    )
    common.add_argument(
        "--token", default=argparse.SUPPRESS,
        help="API token sent as a Bearer header (default: $DAGBROKER_TOKEN)",
    )
    common.add_argument("--json", action="store_true", help="print the broker's JSON answer")
    return common


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register publish, run, status, cancel and redo; each sets `func` to its handler."""
    common = _connection_options()

    p = sub.add_parser("publish", parents=[common], help="validate a workflow file and commit it",
                       description="Publish a workflow file (JSON, or YAML for .yaml/.yml).")
    p.add_argument("file", metavar="FILE", nargs="?",
                   help="a workflow file, or an http(s) URL the broker fetches")
    p.add_argument("-m", "--message", help="commit message of the new revision")
    p.add_argument("--base", help="the revision this edit is based on: refused (409) if the "
                                  "workflow changed since")
    p.add_argument("--from-url", metavar="URL",
                   help="have the broker fetch the workflow from URL (conditional GET)")
    p.set_defaults(func=cmd_publish)

    r = sub.add_parser("run", parents=[common], help="start a run of a workflow",
                       description="Execute a published workflow; given a file, publish it "
                                   "first. Prints the run id.")
    r.add_argument("workflow", metavar="NAME_OR_FILE")
    r.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (repeatable); VALUE is JSON if it parses, "
                        "else a string")
    r.add_argument("--revision", help="run this revision (commit sha) instead of the latest")
    r.add_argument("--priority", type=int, help="priority of the run's tasks (higher first)")
    r.add_argument("-m", "--message", help="commit message when publishing a file")
    r.add_argument("-w", "--watch", action="store_true",
                   help="follow the run until it ends; exit 0 only if it succeeded")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("status", parents=[common], help="show a run and its tasks")
    s.add_argument("run_id", metavar="RUN")
    s.set_defaults(func=cmd_status)

    c = sub.add_parser("cancel", parents=[common], help="cancel a run")
    c.add_argument("run_id", metavar="RUN")
    c.set_defaults(func=cmd_cancel)

    rd = sub.add_parser("redo", parents=[common], help="run a finished run again from a node",
                        description="Start a new run of the same revision and parameters in "
                                    "which NODE (every copy of it) and its descendants run "
                                    "again; other tasks reuse their results. Prints the run id.")
    rd.add_argument("run_id", metavar="RUN")
    rd.add_argument("node", metavar="NODE", help="a node id, a task id, or an ensemble")
    rd.add_argument("-w", "--watch", action="store_true",
                    help="follow the new run until it ends; exit 0 only if it succeeded")
    rd.set_defaults(func=cmd_redo)

    from broker.cli.revisions_client import add_revision_commands

    add_revision_commands(sub, common)

    from broker.cli.events_client import add_event_commands

    add_event_commands(sub, common)

    from broker.cli.account_client import add_account_commands

    add_account_commands(sub, common)

    from broker.cli.logs_client import add_log_commands

    add_log_commands(sub, common)
