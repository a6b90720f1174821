"""Publishing a Nodeworks chart through the API: converted, original kept, exported back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared" / "formats" / "nodeworks"
CHART = "application/x-nodeworks"


def example_chart() -> bytes:
    charts = sorted(SHARED.glob("*.nc"))
    assert charts, f"the example charts are missing from {SHARED} (CI has ../shared)"
    return charts[0].read_bytes()


async def test_publish_chart_then_export_round_trip(make_client: Any) -> None:
    client = await make_client()
    raw = example_chart()
    r = await client.post("/api/v1/workflow/publish?name=chart1", data=raw,
                          headers={"Content-Type": CHART})
    assert r.status == 201, await r.text()
    rev = (await r.json())["revision"]
    native = await (await client.get("/api/v1/workflow/get", params={"name": "chart1"})).json()
    assert native["workflow"]["nodes"]  # converted into native nodes
    r = await client.get("/api/v1/workflow/get", params={"name": "chart1", "format": "nodeworks"})
    assert r.status == 200 and r.content_type == CHART
    assert await r.read() == raw  # unchanged: the original bytes come back exactly
    # a native edit keeps the chart beside it, so the export still carries its editor state
    doc = native["workflow"]
    doc["description"] = "edited as JSON"
    r = await client.post("/api/v1/workflow/publish", json={"workflow": doc, "base": rev})
    assert r.status == 201, await r.text()
    r = await client.get("/api/v1/workflow/get", params={"name": "chart1", "format": "nodeworks"})
    exported = json.loads(await r.read())
    original = json.loads(raw)
    node = next(k for k, v in original.items() if v.get("type") == "Node")
    assert exported[node]["pos"] == original[node]["pos"]


async def test_chart_errors(make_client: Any) -> None:
    client = await make_client()
    r = await client.post("/api/v1/workflow/publish", data=example_chart(),
                          headers={"Content-Type": CHART})
    assert r.status == 400 and "name" in (await r.json())["error"]["message"]
    bad = {"n": {"type": "Node", "name": "X", "uniquename": "n", "path": ["nope", "Nothing"],
                 "terminals": {}}}
    r = await client.post("/api/v1/workflow/publish?name=bad", data=json.dumps(bad),
                          headers={"Content-Type": CHART})
    assert r.status == 422
    assert "nope" in json.dumps((await r.json())["error"])
    r = await client.get("/api/v1/workflow/get", params={"name": "bad", "format": "pdf"})
    assert r.status == 400
