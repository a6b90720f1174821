"""OpenAPI 3.1 document: every route listed, valid, and true to what the handlers accept/return."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from broker.api.app import create_app
from broker.api.auth import PUBLIC, PUBLIC_PREFIXES
from broker.api.openapi import build_spec
from broker.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DIAMOND = {
    "name": "diamond",
    "params": {"greeting": "hi"},
    "nodes": {
        "a": {"command": "echo {{greeting}}"},
        "b": {"command": "echo b", "after": ["a"]},
        "c": {"command": ["echo", "c"], "after": ["a"], "resources": {"cores": 2}},
        "d": {"executor": "noop", "after": ["b", "c"]},
    },
}


class Spec:
    """The served document, with JSON Schema validation of bodies against it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.components = doc["components"]

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator({**schema, "components": self.components})

    def op(self, method: str, path: str) -> dict[str, Any]:
        return dict(self.doc["paths"][path][method.lower()])

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        content = self.op(method, path)["requestBody"]["content"]["application/json"]
        return [e.message for e in self._validator(content["schema"]).iter_errors(body)]

    def check_response(self, method: str, path: str, status: int, body: Any) -> None:
        responses = self.op(method, path)["responses"]
        entry = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        assert entry is not None, (method, path, status, sorted(responses))
        schema = entry["content"]["application/json"]["schema"]
        errors = [e.message for e in self._validator(schema).iter_errors(body)]
        assert not errors, (method, path, status, errors, body)


@pytest.fixture
async def client(make_client: Any) -> TestClient:
    return await make_client()


async def fetch_spec(client: TestClient) -> Spec:
    r = await client.get("/api/v1/openapi.json", headers={"Authorization": ""})
    assert r.status == 200, await r.text()
    return Spec(await r.json())


def router_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route, derived independently of broker.api.openapi."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is None and "prefix" in info:
            path = info["prefix"].rstrip("/") + "/{filename}"
        if path and route.method != "HEAD":
            out.add((route.method.lower(), path))
    return out


async def test_every_route_is_documented_and_the_document_is_valid(client: TestClient) -> None:
    spec = await fetch_spec(client)
    validate(spec.doc)  # OpenAPI 3.1 schema + semantic checks (unique operationIds, refs…)
    assert spec.doc["openapi"].startswith("3.1")
    routes = router_routes(client.app)
    assert len(routes) > 20
    for method, path in sorted(routes):
        op = spec.op(method, path)
        assert op["summary"], (method, path)
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}:]+)", path)), (method, path)
        public = (method.upper(), path) in PUBLIC or path.startswith(PUBLIC_PREFIXES)
        assert (op.get("security") == []) == public, (method, path)
    assert spec.doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_a_new_route_without_metadata_still_appears(tmp_path: Path) -> None:
    async def frobnicate(request: web.Request) -> web.Response:
        """Frobnicate one widget.

        Longer text goes to the description."""
        return web.json_response({})

    app = create_app(Settings(data_dir=str(tmp_path)))  # built, not started
    app.router.add_post("/api/v1/widgets/{widget}/frob", frobnicate)
    op = build_spec(app)["paths"]["/api/v1/widgets/{widget}/frob"]["post"]
    assert op["summary"] == "Frobnicate one widget."
    assert op["description"] == "Longer text goes to the description."
    assert op["parameters"] == [
        {"name": "widget", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert "security" not in op  # the document-wide bearer requirement applies
    assert "4XX" in op["responses"]


async def test_docs_page_is_self_contained(client: TestClient) -> None:
    r = await client.get("/api/docs", headers={"Authorization": ""})
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    assert "/api/v1/openapi.json" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
    assert "fetch(" in page and "<script src" not in page


def _path_template(node: ast.expr) -> str | None:
    """A request path from a literal, an f-string (values → {x}) or `url + "/api/…"`."""
    if isinstance(node, ast.BinOp):
        return _path_template(node.right)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "{x}" for v in node.values
        )
    return None


def harvested_bodies() -> list[tuple[str, str, Any]]:
    """(method, path, body) of every literal `json=` body a test sends with post/patch/put."""
    out = []
    for file in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("post", "patch", "put") or not node.args:
                continue
            path = _path_template(node.args[0])
            body = next((k.value for k in node.keywords if k.arg == "json"), None)
            if path is None or body is None or not path.startswith("/api/"):
                continue
            try:
                out.append((node.func.attr, path.split("?")[0], ast.literal_eval(body)))
            except ValueError:
                continue  # built from variables
    return out


def spec_path(spec: Spec, template: str) -> str | None:
    for path in spec.doc["paths"]:
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)), template):
            return path
    return None


async def test_request_schemas_accept_what_the_server_accepts(client: TestClient) -> None:
    """Workflows and bodies the tests send: the examples and the seed bodies validate; any
    literal body another test sends that the schema rejects, the server rejects too."""
    spec = await fetch_spec(client)
    for example in sorted((ROOT / "examples").glob("*.json")):
        doc = json.loads(example.read_text())
        assert not spec.request_errors("post", "/api/v1/workflow/publish", doc), example
    seeds = [
        ("post", "/api/v1/workflow/publish", DIAMOND),
        ("post", "/api/v1/workflow/publish", {"workflow": DIAMOND, "message": "m"}),
        ("post", "/api/v1/workflow/execute", {"name": "diamond", "params": {"greeting": 1}}),
        ("post", "/api/v1/workflow/execute", {"name": "life", "queue": False}),
        ("post", "/api/v1/workflow/cancel", {"run": "rmissing0000"}),
        ("post", "/api/v1/users", {"id": "alice"}),
        ("post", "/api/v1/tokens", {"name": "ci", "scopes": ["runner"], "expires_in_s": 0.05}),
    ]
    for method, path, body in seeds:
        assert not spec.request_errors(method, path, body), (path, body)
    assert spec.request_errors("post", "/api/v1/workflow/execute", {"name": "x", "bogus": 1})
    for method, template, body in harvested_bodies():
        path = spec_path(spec, template)
        op = spec.doc["paths"].get(path or "", {}).get(method, {})
        if "requestBody" not in op or not spec.request_errors(method, path or "", body):
            continue
        url = template.replace("{x}", "rmissing0000")
        r = await client.request(method, url, json=body)
        assert r.status >= 400, f"{method} {template} accepted {body} the schema rejects"


async def test_answers_match_the_documented_responses(client: TestClient) -> None:
    spec = await fetch_spec(client)

    async def call(
        method: str,
        path: str,
        body: Any = None,
        *,
        url: str | None = None,
        bad: bool = False,
        **params: Any,
    ) -> tuple[int, Any]:
        if body is not None and not bad and "requestBody" in spec.op(method, path):
            assert not spec.request_errors(method, path, body), (path, body)
        r = await client.request(method, url or path, json=body, params=params or None)
        out = await r.json()
        spec.check_response(method, path, r.status, out)
        return r.status, out

    assert (await call("get", "/api/v1/status"))[0] == 200
    assert (await call("post", "/api/v1/workflow/publish", DIAMOND))[0] == 201
    status, ex = await call("post", "/api/v1/workflow/execute", {"name": "diamond"})
    run = ex["run"]
    await call("get", "/api/v1/workflow/status", run=run)
    await call("post", "/api/v1/workflow/status", {"run": run, "tasks": True})
    await call("get", "/api/v1/runs/{run}", url=f"/api/v1/runs/{run}")
    await call("get", "/api/v1/runs")
    await call("get", "/api/v1/workflows")
    await call("get", "/api/v1/workflow/get", name="diamond")
    await call("get", "/api/v1/workflows/{name}", url="/api/v1/workflows/diamond")
    assert (await call("post", "/api/v1/workflow/cancel", {"run": run}))[0] == 200
    assert (await call("post", "/api/v1/workflow/cancel", {"run": run}))[0] == 409
    status, new = await call(
        "post", "/api/v1/workflow/execute", {"name": "diamond", "queue": False}
    )
    await call("patch", "/api/v1/runs/{run}", {"params": {"greeting": "yo"}},
               url=f"/api/v1/runs/{new['run']}")
    await call("post", "/api/v1/runs/{run}/queue", url=f"/api/v1/runs/{new['run']}/queue")
    assert (await call("post", "/api/v1/users", {"id": "alice"}))[0] == 201
    await call("get", "/api/v1/users")
    await call("get", "/api/v1/users/me")
    status, tok = await call("post", "/api/v1/tokens", {"name": "ci", "scopes": ["metrics"]})
    await call("get", "/api/v1/tokens")
    await call("delete", "/api/v1/tokens/{id}", url=f"/api/v1/tokens/{tok['id']}")
    await call("get", "/api/v1/audit")
    await call("get", "/api/v1/health/live")
    assert (await call("get", "/api/v1/runs/{run}", url="/api/v1/runs/rmissing0000"))[0] == 404
    assert (await call("post", "/api/v1/workflow/execute", {"name": "../x"}, bad=True))[0] == 400
