// Pure: what the live channel's deltas do to the query cache. A delta only patches the run it
// names (task state, counts) or tells which queries to refetch; nothing keeps a second store.

import type { LiveErrorFrame, LogFrame, RunStatus, TaskView } from '../api/types';

export interface TaskDelta {
  type: 'task';
  run: string;
  node: string;
  state: string;
  attempt?: number;
  ts: number;
  runner?: string;
  reason?: string;
}
export interface RunDelta {
  type: 'run';
  run: string;
  state: string;
  ts: number;
  reason?: string;
}
export interface RunnerDelta {
  type: 'runner';
  runner: string;
  state: string;
  ts: number;
}
export interface Hello {
  type: 'hello';
  broker: string;
  user: string;
  admin: boolean;
}
export type Delta = TaskDelta | RunDelta | RunnerDelta;
/** What the socket sends. Log and error frames answer this tab's `follow_log` (logFollow.ts):
 *  they never go into the delta buffer. */
export type Frame = Hello | Delta | LogFrame | LiveErrorFrame;

const DELTA_TYPES = new Set(['task', 'run', 'runner']);

/** A state delta for the query cache (not a hello, a log or error frame, or a type this UI
 *  does not know). */
export function isDelta(frame: { type: string }): frame is Delta {
  return DELTA_TYPES.has(frame.type);
}

export const FINAL_RUN_STATES = new Set(['succeeded', 'failed', 'cancelled']);
export const FINAL_TASK_STATES = new Set(['succeeded', 'failed', 'upstream_failed', 'cancelled']);

/** One websocket frame (an object or an array of them) → frames; junk is dropped. */
export function parseFrame(text: string): Frame[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  const items = Array.isArray(data) ? data : [data];
  return items.filter((x): x is Frame => typeof x === 'object' && x !== null && typeof (x as { type?: unknown }).type === 'string');
}

const RANK: Record<string, number> = { pending: 0, ready: 1, waiting: 1, dispatched: 2, running: 3 };

/** A delta older than what the task already shows (a REST snapshot fetched after the event was
 *  sent) would move it back: it is dropped. Ties in the same ms go by state order. */
export function isStale(t: TaskView, d: TaskDelta): boolean {
  const latest = Math.max(t.dispatched_at ?? 0, t.started_at ?? 0, t.finished_at ?? 0);
  if (d.ts !== latest) return d.ts < latest;
  return (RANK[d.state] ?? 4) < (RANK[t.state] ?? 4);
}

/** `lost` is not a task state (the next delta is `ready`); it only counts an attempt. */
function nextTask(t: TaskView, d: TaskDelta): TaskView {
  if (d.state === 'lost' || isStale(t, d)) return t;
  const out: TaskView = { ...t, state: d.state };
  if (d.state !== 'ready') delete out.waiting_for; // only a ready task waits for a runner
  if (d.attempt !== undefined) out.attempt = d.attempt;
  if (d.runner) out.runner = d.runner;
  if (d.reason !== undefined) out.reason = d.reason;
  if (d.state === 'dispatched') out.dispatched_at = d.ts;
  if (d.state === 'running') {
    out.started_at = d.ts;
    out.finished_at = null;
  }
  if (d.state === 'ready' || d.state === 'retry_wait') out.finished_at = t.finished_at;
  if (FINAL_TASK_STATES.has(d.state) || d.state === 'retry_wait') out.finished_at = d.ts;
  return out;
}

/** Apply a run's deltas (oldest first) to its status: one copy of the task list per batch.
 *  Returns the same object when nothing in it changed. */
export function applyRunDeltas(status: RunStatus, deltas: (TaskDelta | RunDelta)[]): RunStatus {
  if (!deltas.length) return status;
  let run = status.run;
  let tasks = status.tasks;
  let index: Map<string, number> | null = null;
  let copied = false;
  const counts = { ...run.counts };
  let changed = false;
  for (const d of deltas) {
    if (d.type === 'run') {
      const stale = FINAL_RUN_STATES.has(run.state) && !FINAL_RUN_STATES.has(d.state);
      if (run.state !== d.state && !stale) {
        run = { ...run, state: d.state, reason: d.reason ?? run.reason };
        if (FINAL_RUN_STATES.has(d.state)) run.finished_at = d.ts;
        changed = true;
      }
      continue;
    }
    if (!tasks) continue;
    if (!index) index = new Map(tasks.map((t, i) => [t.id, i]));
    const i = index.get(d.node);
    if (i === undefined) continue;
    const before = tasks[i];
    const after = nextTask(before, d);
    if (after === before) continue;
    if (!copied) {
      tasks = tasks.slice();
      copied = true;
    }
    tasks[i] = after;
    if (before.state !== after.state) {
      counts[before.state] = (counts[before.state] ?? 0) - 1;
      if (counts[before.state] <= 0) delete counts[before.state];
      counts[after.state] = (counts[after.state] ?? 0) + 1;
    }
    changed = true;
  }
  if (!changed) return status;
  return { ...status, run: { ...run, counts, phase: phaseOf(run.state, counts) }, tasks };
}

/** The run's phase as the broker computes it (broker/engine/queries.py run_phase). */
export function phaseOf(state: string, counts: Record<string, number>): string {
  if (state === 'new' || state === 'failed' || state === 'cancelled') return state;
  if (state === 'succeeded') return 'finished';
  if (state === 'expanding') return 'queued';
  if (counts.running || counts.dispatched) return 'running';
  const started = ['succeeded', 'failed', 'upstream_failed', 'cancelled'].reduce((n, s) => n + (counts[s] ?? 0), 0);
  if (!started && !counts.retry_wait) return 'queued';
  return 'waiting';
}

export interface Plan {
  /** run id → its deltas in order (patch the run's cached status with applyRunDeltas) */
  patches: Map<string, (TaskDelta | RunDelta)[]>;
  /** query keys to refetch now */
  invalidate: string[][];
  /** runs whose estimate should be refreshed (throttled by the caller) */
  eta: Set<string>;
  /** the dashboard's queue/runner views changed */
  operations: boolean;
}

/** Sort a batch of deltas into cache patches and refetches. */
export function planDeltas(deltas: Delta[]): Plan {
  const plan: Plan = { patches: new Map(), invalidate: [], eta: new Set(), operations: false };
  const seen = new Set<string>();
  const refetch = (key: string[]) => {
    const id = key.join('\u0000');
    if (!seen.has(id)) {
      seen.add(id);
      plan.invalidate.push(key);
    }
  };
  for (const d of deltas) {
    if (!isDelta(d)) continue; // a newer broker's frame type: nothing of the cache to patch
    if (d.type === 'runner') {
      refetch(['runners']);
      refetch(['queue']);
      continue;
    }
    const list = plan.patches.get(d.run) ?? [];
    list.push(d);
    plan.patches.set(d.run, list);
    plan.eta.add(d.run);
    plan.operations = true;
    if (d.type === 'run') {
      refetch(['runs']);
      if (FINAL_RUN_STATES.has(d.state)) {
        refetch(['run', d.run]);
        refetch(['attempts', d.run]);
        refetch(['provenance', d.run]);
      }
    } else {
      refetch(['task', d.run, d.node]);
      if (FINAL_TASK_STATES.has(d.state) || d.state === 'retry_wait') {
        refetch(['attempts', d.run]);
        refetch(['log', d.run, d.node]);
      }
    }
  }
  return plan;
}
