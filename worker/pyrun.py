"""`python -m worker.pyrun pkg.mod:func`: the child process of the python executor.

Reads kwargs from $DAGB_KWARGS and inputs from $DAGB_INPUTS (JSON files), calls the function
(awaiting it if it is a coroutine function), writes its JSON return value to $DAGB_RESULT.
On an exception: the traceback goes to stderr (the task log), {"type", "message"} to
$DAGB_ERROR, and the exit code is 1. Standard library only, so it starts fast.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any


def resolve(target: str) -> Callable[..., Any]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:function', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def _load(path: str | None, default: Any) -> Any:
    if not path or not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def accepts_inputs(func: Callable[..., Any]) -> bool:
    try:
        return "inputs" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def call(func: Callable[..., Any], kwargs: dict[str, Any], inputs: dict[str, Any]) -> Any:
    if accepts_inputs(func) and "inputs" not in kwargs:
        kwargs = {**kwargs, "inputs": inputs}
    value = func(**kwargs)
    if inspect.isawaitable(value):
        value = asyncio.run(_await(value))
    return value


async def _await(value: Any) -> Any:
    return await value


def _write(path: str | None, text: str) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ
    try:
        if len(args) != 1:
            raise ValueError("usage: python -m worker.pyrun package.module:function")
        func = resolve(args[0])
        value = call(func, _load(env.get("DAGB_KWARGS"), {}), _load(env.get("DAGB_INPUTS"), {}))
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"the return value is not JSON-serialisable: {e}") from e
    except Exception as e:
        traceback.print_exc()
        _write(env.get("DAGB_ERROR"), json.dumps({"type": type(e).__name__, "message": str(e)}))
        return 1
    if value is not None:
        _write(env.get("DAGB_RESULT"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
