"""The shell executor end to end: real worker, real subprocesses, completions on `done`."""

from __future__ import annotations

import json

from helpers import wait_until
from test_worker_support import (  # noqa: F401
    WorkerHarness,
    process_gone,
    read_text,
    wk_fixture,
)

from broker.wire import Outcome


async def test_success_with_result_inputs_and_env(wk: WorkerHarness) -> None:
    await wk.set_result("a", {"x": 1})
    await wk.rds.hset(wk.keys.task("r1", "z"), mapping={"state": "succeeded", "result": ""})
    out = wk.tmp / "seen"
    cmd = (
        'cat "$DAGB_INPUTS" > {{ out }}.inputs; '
        'echo "$DAGB_RUN $DAGB_NODE $DAGB_TASK $DAGB_ATTEMPT $GREETING" > {{ out }}.env; '
        'echo \'{"sum": 3}\' > "$DAGB_RESULT"; echo hello {{ name }} {{ i }}'
    )
    settings = await wk.start()
    await wk.push(
        "b.1", command=cmd, params={"name": "world", "out": str(out)}, vars={"i": 7},
        parents=["a", "z"], env={"GREETING": "hi {{ name }}"},
    )
    c = await wk.completion("b.1")
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    assert c.result == {"sum": 3}
    assert c.exit_code == 0 and c.reason == ""
    assert c.runner == settings.runner_id
    assert "hello world 7" in c.tail
    assert 0 < c.started_at_ms <= c.finished_at_ms
    assert json.loads(read_text(wk.tmp / "seen.inputs")) == {"a": {"x": 1}, "z": None}
    assert read_text(wk.tmp / "seen.env").split() == ["r1", "b.1", "b", "1", "hi", "world"]
    data = wk.tmp / "data"
    assert settings.data_dir == str(data)
    assert "hello world 7" in read_text(data / "logs" / "r1" / "b.1" / "attempt-1.log")
    assert not (data / "work" / "r1").exists()  # per-attempt files removed
    assert await wk.task_state("b.1") == "running"  # Scripts.start marked it
    assert await wk.rds.xlen(wk.keys.queue("cpu")) == 0  # acked and deleted
    assert await wk.pending() == 0


async def test_nonzero_exit_and_signal_fail(wk: WorkerHarness) -> None:
    await wk.start()
    await wk.push("bad", command="echo oops >&2; exit 3")
    await wk.push("sig", command="kill -9 $$")
    bad, sig = await wk.completion("bad"), await wk.completion("sig")
    assert (bad.outcome, bad.reason, bad.exit_code) == (Outcome.FAILED, "exit code 3", 3)
    assert "oops" in bad.tail
    assert (sig.outcome, sig.reason) == (Outcome.FAILED, "killed by signal SIGKILL")


async def test_invalid_json_result_fails_clearly(wk: WorkerHarness) -> None:
    await wk.start()
    await wk.push("j", command='echo "not json" > "$DAGB_RESULT"')
    c = await wk.completion("j")
    assert c.outcome is Outcome.FAILED
    assert c.reason.startswith("result is not valid JSON")


async def test_timeout_kills_the_whole_process_group(wk: WorkerHarness) -> None:
    pidfile = wk.tmp / "grandchild.pid"
    await wk.start()
    # the grandchild is started in the background; the shell itself waits on it
    await wk.push("slow", command=f"sleep 30 & echo $! > {pidfile}; wait", timeout_s=0.5)
    c = await wk.completion("slow")
    assert (c.outcome, c.reason) == (Outcome.FAILED, "timeout after 0.5s")
    assert "timeout after 0.5s" in c.tail
    pid = int(read_text(pidfile))
    await wait_until(process_gone(pid), 5.0, what=f"grandchild {pid} to be killed")


async def test_a_task_ignoring_sigterm_gets_sigkill(wk: WorkerHarness) -> None:
    pidfile = wk.tmp / "stubborn.pid"
    await wk.start(kill_grace_s=0.3)
    # '' ignores TERM in the shell and in what it starts (ignored signals survive exec)
    await wk.push("stubborn", command=f"trap '' TERM; sleep 30 & echo $! > {pidfile}; wait",
                  timeout_s=0.3)
    c = await wk.completion("stubborn")
    assert (c.outcome, c.reason, c.exit_code) == (Outcome.FAILED, "timeout after 0.3s", -9)
    await wait_until(process_gone(int(read_text(pidfile))), 5.0, what="sleep killed")


async def test_shell_quoting_passes_values_literally(wk: WorkerHarness) -> None:
    marker = wk.tmp / "pwned"
    value = f"$(touch {marker}); ;'\"` && touch {marker}"
    out = wk.tmp / "out"
    await wk.start()
    params = {"v": value, "out": str(out)}
    await wk.push("q", command="printf %s {{ v }} > {{ out }}", params=params)
    # an argv list is exec'd without a shell: no quoting needed, none applied
    await wk.push("argv", command=["printf", "[%s]", "{{ v }}"], params={"v": value})
    q, argv = await wk.completion("q"), await wk.completion("argv")
    assert q.outcome is Outcome.SUCCEEDED, q.reason
    assert read_text(out) == value
    assert argv.outcome is Outcome.SUCCEEDED, argv.reason
    assert argv.tail == f"[{value}]"
    assert not marker.exists()


async def test_unknown_placeholder_and_missing_program_fail(wk: WorkerHarness) -> None:
    await wk.start()
    await wk.push("ph", command="echo {{ nope }}")
    await wk.push("prog", command=["/no/such/program"])
    await wk.push("wd", command="true", workdir=str(wk.tmp / "missing"))
    ph, prog, wd = await wk.completion("ph"), await wk.completion("prog"), await wk.completion("wd")
    assert (ph.outcome, ph.reason) == (Outcome.FAILED, "unknown placeholder {{ nope }}")
    assert prog.outcome is Outcome.FAILED and prog.reason.startswith("cannot start")
    assert wd.outcome is Outcome.FAILED and "missing" in wd.reason


async def test_workdir_is_rendered(wk: WorkerHarness) -> None:
    (wk.tmp / "w-5").mkdir()
    await wk.start()
    await wk.push("w", command="pwd", workdir=str(wk.tmp / "w-{{ n }}"), params={"n": 5})
    c = await wk.completion("w")
    assert c.outcome is Outcome.SUCCEEDED, c.reason
    assert c.tail.strip() == str(wk.tmp / "w-5")
