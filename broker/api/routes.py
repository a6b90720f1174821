"""The route table (seed paths plus resource-style aliases sharing the handlers)."""

from __future__ import annotations

from aiohttp import web

from broker.api import (
    audit,
    events_api,
    health,
    history_api,
    lifecycle_api,
    logs_api,
    metrics,
    openapi,
    operations,
    provenance_api,
    revisions_api,
    static_ui,
    system,
    timers_api,
    ui_api,
    users,
    workflows,
    ws,
)
from broker.api import redo as redo_api
from broker.api.auth import PUBLIC

API = "/api/v1"

# The UI's built assets (also public by prefix; named here as the OpenAPI document lists them).
PUBLIC.add(static_ui.ASSETS_ROUTE)


def route_table() -> list[web.RouteDef]:
    return [
        web.get("/", static_ui.index),
        web.get(f"{API}/status", system.status),
        web.get(f"{API}/history/runs", history_api.list_history),
        web.get(f"{API}/runs/{{run}}/attempts", history_api.run_attempts),
        web.get(f"{API}/runs/{{run}}/eta", history_api.run_eta),
        web.get(f"{API}/runs/{{run}}/logs/{{task}}", logs_api.task_log),
        web.get(f"{API}/runs/{{run}}/artifacts", logs_api.run_artifacts),
        web.get(f"{API}/runs/{{run}}/artifacts/{{sha256}}", logs_api.download_artifact),
        web.get(f"{API}/queue/status", operations.queue_status),
        web.post(f"{API}/queue/clear", operations.queue_clear),
        web.get(f"{API}/runners/status", operations.runners_status),
        web.post(f"{API}/runners/register", operations.runners_register),
        web.post(f"{API}/runners/cancel", operations.runners_cancel),
        web.post(f"{API}/runners/shutdown", operations.runners_shutdown),
        web.post(f"{API}/admin/cancel_all", operations.admin_cancel_all),
        web.post(f"{API}/admin/shutdown", operations.admin_shutdown),
        web.patch(f"{API}/runs/{{run}}", lifecycle_api.patch_run),
        web.delete(f"{API}/runs/{{run}}", lifecycle_api.delete_run),
        web.post(f"{API}/runs/{{run}}/queue", lifecycle_api.queue_run),
        web.get(f"{API}/runs/{{run}}/results", lifecycle_api.results),
        web.get(f"{API}/runs/{{run}}/messages", lifecycle_api.messages),
        web.post(f"{API}/workflow/publish", revisions_api.publish),
        web.post(f"{API}/workflow/execute", workflows.execute),
        web.get(f"{API}/workflow/status", workflows.status),
        web.post(f"{API}/workflow/status", workflows.status),
        web.post(f"{API}/workflow/cancel", workflows.cancel),
        web.get(f"{API}/workflow/get", revisions_api.get_workflow),
        web.get(f"{API}/workflows", revisions_api.list_workflows),
        web.get(f"{API}/workflows/{{name}}", revisions_api.get_workflow),
        web.get(f"{API}/workflow/history", revisions_api.history),
        web.get(f"{API}/workflow/diff", revisions_api.diff),
        web.post(f"{API}/workflow/delete", revisions_api.delete),
        web.get(f"{API}/workflows/{{name}}/history", revisions_api.history),
        web.get(f"{API}/workflows/{{name}}/diff", revisions_api.diff),
        web.get(f"{API}/runs", workflows.list_runs),
        web.get(f"{API}/runs/{{run}}", workflows.run_by_id),
        web.post(f"{API}/runs/{{run}}/cancel", workflows.cancel_by_id),
        web.get(f"{API}/runs/{{run}}/provenance", provenance_api.run_provenance),
        web.post(f"{API}/runs/{{run}}/rerun", provenance_api.rerun),
        web.get(f"{API}/provenance", provenance_api.lookup),
        web.post(f"{API}/runs/{{run}}/redo", redo_api.redo_by_id),
        web.post(f"{API}/workflow/redo", redo_api.redo),
        web.post(f"{API}/users", users.create_user),
        web.get(f"{API}/users", users.list_users),
        web.get(f"{API}/users/me", users.whoami),
        web.post(f"{API}/tokens", users.create_token),
        web.get(f"{API}/tokens", users.list_tokens),
        web.delete(f"{API}/tokens/{{id}}", users.revoke_token),
        web.post(f"{API}/tokens/{{id}}/revoke", users.revoke_token),
        web.get(f"{API}/audit", audit.list_audit),
        web.post(events_api.PUSH_PATH, events_api.push_event),
        web.get(f"{API}/events/status", events_api.status),
        web.post(f"{API}/timers/start", timers_api.start),
        web.get(f"{API}/timers/status", timers_api.status),
        web.post(f"{API}/timers/cancel", timers_api.cancel),
        web.delete(f"{API}/timers/{{id}}", timers_api.cancel_by_id),
        web.get(f"{API}/openapi.json", openapi.openapi_json),
        web.get("/api/docs", openapi.docs_page),
        web.get(f"{API}/health/live", health.live),
        web.get(f"{API}/health/ready", health.ready),
        web.get("/metrics", metrics.metrics),
        web.get(ws.PATH, ws.websocket),
        web.get(f"{API}/ui/schema", ui_api.workflow_schema),
        web.get(f"{API}/runs/{{run}}/tasks/{{task}}", ui_api.task_detail),
        web.get(f"{API}/runs/{{run}}/tasks/{{task}}/log", ui_api.task_log),
        *static_ui.ui_routes(),  # LAST: the SPA catch-all (never matches /api/…)
    ]
