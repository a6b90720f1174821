// Pure: the rows of a run's timeline. One row per shown graph node (a group spans its tasks):
// the actual bar from the first start to the last finish (or now), and a projected bar from the
// ETA for what has not finished yet.

import type { EtaTask, TaskView } from '../api/types';
import type { RunGraph } from './model';

export interface TimelineRow {
  id: string;
  label: string;
  state: string;
  actual: [number, number] | null;
  projected: [number, number] | null;
}

export interface Timeline {
  rows: TimelineRow[];
  start: number;
  end: number;
}

const FINISHED = new Set(['succeeded', 'failed', 'upstream_failed', 'cancelled']);

export function timeline(graph: RunGraph, tasks: TaskView[], eta: EtaTask[] | undefined, now: number): Timeline {
  const byRow = new Map<string, TimelineRow>();
  for (const n of graph.nodes) byRow.set(n.id, { id: n.id, label: n.label, state: n.state, actual: null, projected: null });
  const etaById = new Map((eta ?? []).map((e) => [e.id, e]));
  const widen = (r: [number, number] | null, a: number, b: number): [number, number] => (r ? [Math.min(r[0], a), Math.max(r[1], b)] : [a, b]);
  for (const t of tasks) {
    const row = byRow.get(graph.shownAs.get(t.id) ?? '');
    if (!row) continue;
    if (t.started_at) row.actual = widen(row.actual, t.started_at, t.finished_at ?? (FINISHED.has(t.state) ? t.started_at : now));
    const e = etaById.get(t.id);
    if (!FINISHED.has(t.state) && e?.expected_start && e.expected_finish) {
      row.projected = widen(row.projected, Math.max(now, e.expected_start), Math.max(now, e.expected_finish));
    }
  }
  const rows = [...byRow.values()].sort((a, b) => (a.actual?.[0] ?? a.projected?.[0] ?? Infinity) - (b.actual?.[0] ?? b.projected?.[0] ?? Infinity));
  let start = Infinity;
  let end = -Infinity;
  for (const r of rows) {
    for (const span of [r.actual, r.projected]) {
      if (!span) continue;
      start = Math.min(start, span[0]);
      end = Math.max(end, span[1]);
    }
  }
  if (!Number.isFinite(start)) {
    start = now;
    end = now + 1000;
  }
  return { rows, start, end: Math.max(end, start + 1000) };
}
