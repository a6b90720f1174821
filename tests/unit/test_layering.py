"""The worker runs on compute hosts: it must not pull in the broker's server-side stack."""

from __future__ import annotations

import subprocess
import sys


def test_worker_imports_no_server_stack() -> None:
    code = (
        "import sys, worker.main, worker.service, worker.executors.shell, worker.executors.python;"
        "bad = sorted(m for m in ('aiohttp', 'aiosqlite', 'dulwich') if m in sys.modules);"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"worker imported: {out.stdout.strip()}"


def test_core_is_pure() -> None:
    code = (
        "import sys, broker.core.expand, broker.core.parse, broker.core.validate, broker.wire;"
        "bad = sorted(m for m in ('aiohttp', 'redis', 'dulwich', 'asyncio') if m in sys.modules);"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"
