"""Each Nodeworks example chart, converted, published and run by a real broker and worker,
reproduces the output values Nodeworks saved in it.

The examples are public files in ../shared/formats/nodeworks (beside the repository); the
custom-node chart runs with the test plugin in tests/fixtures/nodeworks, which is put on the
worker's PYTHONPATH. One broker and one worker serve the whole module.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.cluster import Cluster, publish_and_run, wait_run

from broker.nodeworks.convert import ConvertedChart, convert_chart
from broker.nodeworks.library import load_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nodeworks"
EXAMPLES = ROOT.parent / "shared" / "formats" / "nodeworks"
RUN_TIMEOUT_S = 180  # the first matplotlib import on a fresh machine builds its font cache


class Setup:
    def __init__(self, cluster: Cluster, url: str, workdir: Path) -> None:
        self.cluster = cluster
        self.url = url
        self.workdir = workdir

    async def run(self, converted: ConvertedChart) -> dict[str, dict[str, Any]]:
        """Publish the native workflow, run it, return {task id: task} of a succeeded run."""
        doc = json.loads(json.dumps(converted.workflow))
        doc["defaults"] = {"workdir": str(self.workdir), "timeout": 120}
        run = await publish_and_run(self.url, doc)
        st = await wait_run(self.url, run, timeout_s=RUN_TIMEOUT_S, cluster=self.cluster)
        assert st["run"]["state"] == "succeeded", (st, self.cluster.logs())
        return {t["id"]: t for t in st["tasks"]}


@pytest.fixture(scope="module")
def setup(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("nodeworks")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(FIXTURES), *filter(None, [env.get("PYTHONPATH")])]
    )
    cluster = Cluster(redis_server.url, "t" + uuid.uuid4().hex[:10], tmp, env)
    try:
        _, url = cluster.start_broker()
        cluster.start_worker(name="nw1", slots=4)
        workdir = tmp / "work"
        workdir.mkdir()
        yield Setup(cluster, url, workdir)
    finally:
        cluster.stop_all()


@pytest.fixture(scope="module")
def plugins() -> Iterator[Any]:
    sys.path.insert(0, str(FIXTURES))
    try:
        yield load_plugins(["nodeworks_test_plugin"])
    finally:
        sys.path.remove(str(FIXTURES))


def read_example(name: str) -> bytes:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.fail(f"Nodeworks example {name} not found: expected the shared example charts "
                    f"in {EXAMPLES} (beside the repository)")
    return path.read_bytes()


def saved_outputs(raw: bytes) -> list[tuple[str, str, Any]]:
    """(uniquename, output terminal, value) for every output value saved in the chart."""
    return [
        (u, t, term["value"])
        for u, entry in json.loads(raw).items() if entry.get("type") == "Node"
        for t, term in entry["terminals"].items()
        if term["opts"]["out"] and term["value"] is not None
    ]


def assert_reproduces(converted: ConvertedChart, tasks: dict[str, dict[str, Any]]) -> int:
    checked = 0
    for u, terminal, saved in saved_outputs(converted.original):
        got = tasks[converted.node_ids[u]]["result"][terminal]
        if isinstance(saved, float):
            assert got == pytest.approx(saved, rel=1e-9), (u, terminal)
        else:
            assert got == saved, (u, terminal)
        checked += 1
    return checked


async def test_distributed_example(setup: Setup) -> None:
    converted = convert_chart(read_example("distributed_nodeworks_node_ex.nc"), name="nw-node-ex")
    tasks = await setup.run(converted)
    assert assert_reproduces(converted, tasks) == 5  # power, multiply, integer, subtract, root
    assert tasks["subtract"]["result"] == {"result": 271860.0}


async def test_multiinput_example(setup: Setup) -> None:
    converted = convert_chart(read_example("interactive_block_project_demo1.nc"), name="nw-demo1")
    tasks = await setup.run(converted)
    assert assert_reproduces(converted, tasks) == 3
    assert tasks["multiply"]["result"] == {"result": 18.0}


async def test_custom_node_example(setup: Setup, plugins: Any) -> None:
    raw = read_example("interactive_block_project_demo2.nc")
    converted = convert_chart(raw, name="nw-demo2", plugins=plugins)
    tasks = await setup.run(converted)
    assert assert_reproduces(converted, tasks) == 1  # the String node's "stephan"
    assert tasks["my_string_node"]["result"] == {"printed": "stephan", "length": 7}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert data[-8:-4] == b"IEND", f"{path} is truncated"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_numpy_and_plot_example(setup: Setup) -> None:
    converted = convert_chart(read_example("interactive_block_project_demo.nc"), name="nw-demo")
    tasks = await setup.run(converted)
    # Nodeworks saved no values for this chart (arrays are not saved): compute the expected
    x = [i * 0.1 for i in range(100)]
    assert tasks["range"]["result"]["range"] == pytest.approx(x)
    assert tasks["trig"]["result"]["array"] == pytest.approx([math.sin(v) for v in x])
    assert tasks["trig.0"]["result"]["array"] == pytest.approx([math.cos(v) for v in x])
    assert tasks["plot"]["result"] == {"file": "plot.png"}
    width, height = png_size(setup.workdir / "plot.png")
    assert width > 100 and height > 100


async def test_job_nodes_and_plugin_fixture(setup: Setup, plugins: Any) -> None:
    raw = (FIXTURES / "jobs_and_plugin.nc").read_bytes()
    converted = convert_chart(raw, name="nw-jobs", plugins=plugins)
    tasks = await setup.run(converted)
    assert assert_reproduces(converted, tasks) == 5  # both strings, float, multiply, shout
    assert tasks["bash"]["result"] == 7  # a shell job's own result, wired whole
    assert tasks["multiply"]["result"] == {"result": 42.0}
    assert tasks["shout"]["result"] == {"upper": "{{ NOT A PARAM }}"}
    assert tasks["python_job"]["result"] == {"multiply": {"result": 42.0}}
