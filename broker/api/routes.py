"""The route table (seed paths plus resource-style aliases sharing the handlers)."""

from __future__ import annotations

from aiohttp import web

from broker.api import audit, revisions_api, system, users, workflows

API = "/api/v1"


def route_table() -> list[web.RouteDef]:
    return [
        web.get("/", system.index),
        web.get(f"{API}/status", system.status),
        web.get(f"{API}/queue/status", system.queue_status),
        web.post(f"{API}/workflow/publish", revisions_api.publish),
        web.post(f"{API}/workflow/execute", workflows.execute),
        web.get(f"{API}/workflow/status", workflows.status),
        web.post(f"{API}/workflow/status", workflows.status),
        web.post(f"{API}/workflow/cancel", workflows.cancel),
        web.get(f"{API}/workflow/get", revisions_api.get_workflow),
        web.get(f"{API}/workflows", revisions_api.list_workflows),
        web.get(f"{API}/workflows/{{name}}", revisions_api.get_workflow),
        web.get(f"{API}/runs", workflows.list_runs),
        web.get(f"{API}/runs/{{run}}", workflows.run_by_id),
        web.post(f"{API}/runs/{{run}}/cancel", workflows.cancel_by_id),
        web.post(f"{API}/users", users.create_user),
        web.get(f"{API}/users", users.list_users),
        web.get(f"{API}/users/me", users.whoami),
        web.post(f"{API}/tokens", users.create_token),
        web.get(f"{API}/tokens", users.list_tokens),
        web.delete(f"{API}/tokens/{{id}}", users.revoke_token),
        web.post(f"{API}/tokens/{{id}}/revoke", users.revoke_token),
        web.get(f"{API}/audit", audit.list_audit),
    ]
