"""The python executor: callables, inline scripts and script paths, each in a subprocess."""

from __future__ import annotations

import os

from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.wire import Outcome

MODULE = '''
import os

def add(a, b, inputs):
    return {"sum": a + b, "inputs": inputs, "pid": os.getpid()}

def plain(text):
    print("got", text)
    return text.upper()

def boom(**kwargs):
    raise ValueError("bad input: " + repr(kwargs))

async def later(n):
    return n * 2

def unjsonable():
    return {1, 2}
'''


async def test_callable_gets_kwargs_and_inputs(wk: WorkerHarness) -> None:
    (wk.tmp / "mymod.py").write_text(MODULE)
    await wk.set_result("up", [1, 2])
    await wk.start()
    common = {"workdir": str(wk.tmp), "params": {"x": 1, "word": "hey"}}
    await wk.push("add", "python", callable="mymod:add", kwargs={"a": "{{ x }}", "b": 2},
                  parents=["up"], **common)
    await wk.push("plain", "python", callable="mymod:plain", kwargs={"text": "{{ word }}!"},
                  **common)
    await wk.push("later", "python", callable="mymod:later", kwargs={"n": 21}, **common)
    add, plain, later = [await wk.completion(n) for n in ("add", "plain", "later")]
    assert add.outcome is Outcome.SUCCEEDED, add.tail
    assert add.result["sum"] == 3 and add.result["inputs"] == {"up": [1, 2]}
    assert add.result["pid"] != os.getpid()  # never on the worker's own process
    assert (plain.outcome, plain.result) == (Outcome.SUCCEEDED, "HEY!")
    assert "got hey!" in plain.tail
    assert later.result == 42


async def test_callable_exception_and_bad_result_fail(wk: WorkerHarness) -> None:
    (wk.tmp / "mymod.py").write_text(MODULE)
    await wk.start()
    await wk.push("boom", "python", callable="mymod:boom", kwargs={"k": 1}, workdir=str(wk.tmp))
    await wk.push("set", "python", callable="mymod:unjsonable", workdir=str(wk.tmp))
    await wk.push("missing", "python", callable="nosuchmod:f", workdir=str(wk.tmp))
    boom = await wk.completion("boom")
    assert boom.outcome is Outcome.FAILED
    assert boom.reason == "ValueError: bad input: {'k': 1}"
    assert "Traceback" in boom.tail and "raise ValueError" in boom.tail
    bad = await wk.completion("set")
    assert bad.outcome is Outcome.FAILED
    assert bad.reason.startswith("TypeError: the return value is not JSON-serialisable")
    missing = await wk.completion("missing")
    assert missing.reason == "ModuleNotFoundError: No module named 'nosuchmod'"


async def test_inline_script_and_script_path(wk: WorkerHarness) -> None:
    script = (
        "import json, os, sys\n"
        "print('running', sys.argv[0])\n"
        "with open(os.environ['DAGB_RESULT'], 'w') as f:\n"
        "    json.dump({'n': {{ n }}, 'node': os.environ['DAGB_NODE']}, f)\n"
    )
    path = wk.tmp / "tool.py"
    path.write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(int(sys.argv[2]))\n")
    await wk.start()
    await wk.push("inline", "python", script=script, params={"n": 5})
    await wk.push("ok", "python", command=[str(path), "{{ word }}", "0"], params={"word": "a b"})
    await wk.push("str", "python", command=f"{path} {{{{ word }}}} 4", params={"word": "a b"})
    inline = await wk.completion("inline")
    assert (inline.outcome, inline.result) == (Outcome.SUCCEEDED, {"n": 5, "node": "inline"})
    ok, as_str = await wk.completion("ok"), await wk.completion("str")
    assert ok.outcome is Outcome.SUCCEEDED and "args ['a b', '0']" in ok.tail
    assert (as_str.outcome, as_str.reason) == (Outcome.FAILED, "exit code 4")
    assert "args ['a b', '4']" in as_str.tail  # a quoted value stays one argument
