// The one client of the broker's REST API: one method per endpoint, errors normalised to ApiError.

import type {
  Attempt, BrokerStatus, LogPage, Me, PublishResult, QueueInfo, RunEta, RunStatus, RunView, RunnerInfo,
  TaskDetail, WorkflowDoc, WorkflowHistory, WorkflowListItem, WorkflowRevision, JsonSchema,
  ServerDiff,
} from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'dagb.token';

export class Api {
  constructor(private readonly base = '', private readonly storage: Storage = sessionStorage) {}

  get token(): string | null {
    return this.storage.getItem(TOKEN_KEY);
  }

  setToken(token: string | null): void {
    if (token) this.storage.setItem(TOKEN_KEY, token);
    else this.storage.removeItem(TOKEN_KEY);
  }

  /** The websocket URL of the live channel (the token as a query argument). */
  liveUrl(): string {
    const loc = window.location;
    const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${loc.host}${this.base}/api/v1/ws?token=${encodeURIComponent(this.token ?? '')}`;
  }

  private async request<T>(method: string, path: string, body?: unknown, query?: Record<string, string | number | undefined>, raw?: { body?: string; contentType?: string; text?: boolean }): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') params.set(k, String(v));
    const qs = params.toString();
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined || raw?.body !== undefined) headers['Content-Type'] = raw?.contentType ?? 'application/json';
    let resp: Response;
    try {
      resp = await fetch(`${this.base}/api/v1${path}${qs ? `?${qs}` : ''}`, {
        method, headers, body: raw?.body ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
    } catch (e) {
      throw new ApiError(0, 'network', `the broker is unreachable (${String(e)})`);
    }
    const text = await resp.text();
    if (raw?.text && resp.ok) return text as T;
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const err = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)?.error;
      throw new ApiError(resp.status, err?.code ?? 'http_error', err?.message ?? `${resp.status} ${resp.statusText}`, err?.details ?? {});
    }
    return data as T;
  }

  me(): Promise<Me> { return this.request('GET', '/users/me'); }

  // runs
  listRuns(limit = 100): Promise<{ runs: RunView[] }> { return this.request('GET', '/runs', undefined, { limit }); }
  run(id: string): Promise<RunStatus> { return this.request('GET', `/runs/${encodeURIComponent(id)}`); }
  eta(id: string): Promise<RunEta> { return this.request('GET', `/runs/${encodeURIComponent(id)}/eta`); }
  attempts(id: string): Promise<{ run: string; attempts: Attempt[] }> { return this.request('GET', `/runs/${encodeURIComponent(id)}/attempts`); }
  provenance(id: string): Promise<Record<string, unknown>> { return this.request('GET', `/runs/${encodeURIComponent(id)}/provenance`); }
  cancelRun(id: string): Promise<unknown> { return this.request('POST', `/runs/${encodeURIComponent(id)}/cancel`); }
  redo(id: string, node: string): Promise<{ run: string; rerun: number; reused: number }> {
    return this.request('POST', `/runs/${encodeURIComponent(id)}/redo`, { node });
  }
  task(run: string, task: string): Promise<TaskDetail> {
    return this.request('GET', `/runs/${encodeURIComponent(run)}/tasks/${encodeURIComponent(task)}`);
  }
  taskLog(run: string, task: string, after?: string, count = 500): Promise<LogPage> {
    return this.request('GET', `/runs/${encodeURIComponent(run)}/tasks/${encodeURIComponent(task)}/log`, undefined, { after, count });
  }

  // operations
  status(): Promise<BrokerStatus> { return this.request('GET', '/status'); }
  queue(): Promise<{ queues: Record<string, QueueInfo> }> { return this.request('GET', '/queue/status'); }
  runners(): Promise<{ runners: RunnerInfo[] }> { return this.request('GET', '/runners/status'); }
  drainRunner(runner: string, drain = true): Promise<unknown> { return this.request('POST', '/runners/shutdown', { runner, drain }); }

  // workflows
  workflows(): Promise<{ workflows: string[]; items: WorkflowListItem[] }> { return this.request('GET', '/workflows'); }
  workflow(name: string, revision?: string): Promise<WorkflowRevision> { return this.request('GET', '/workflow/get', undefined, { name, revision }); }
  history(name: string, limit = 100): Promise<WorkflowHistory> { return this.request('GET', '/workflow/history', undefined, { name, limit }); }
  diff(name: string, from: string, to: string): Promise<ServerDiff & { from: string; to: string }> {
    return this.request('GET', '/workflow/diff', undefined, { name, from, to });
  }
  publish(workflow: WorkflowDoc, message: string, base?: string): Promise<PublishResult> {
    return this.request('POST', '/workflow/publish', { workflow, message: message || undefined, base });
  }
  execute(name: string, revision?: string, params?: Record<string, unknown>): Promise<{ run: string; tasks: number }> {
    return this.request('POST', '/workflow/execute', { name, revision, params: params ?? {} });
  }
  /** Publish a Nodeworks chart (converted to a native workflow; the chart is kept with it). */
  publishChart(name: string, chart: string, message: string): Promise<PublishResult> {
    return this.request('POST', '/workflow/publish', undefined, { format: 'nodeworks', name, message: message || undefined },
      { body: chart, contentType: 'application/x-nodeworks' });
  }
  /** A revision as a Nodeworks chart (native edits merged into the chart it came from). */
  exportChart(name: string, revision?: string): Promise<string> {
    return this.request('GET', '/workflow/get', undefined, { name, revision, format: 'nodeworks' }, { text: true });
  }
  schema(): Promise<JsonSchema> { return this.request('GET', '/ui/schema'); }
}
