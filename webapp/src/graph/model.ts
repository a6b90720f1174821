// Pure: the graph shown for a run (tasks, with matrix/ensemble copies collapsed into groups)
// and a stable hash of its shape (the layout cache key).

import type { TaskView } from '../api/types';

export interface GNode {
  id: string;
  label: string;
  kind: 'task' | 'group';
  state: string;
  /** group only: tasks per state, the group key and its size */
  counts?: Record<string, number>;
  key?: string;
  size?: number;
  /** group only: ready members parked for want of a big enough runner, and the first reason */
  waiting?: number;
  waitingFor?: string;
  /** task only: the task id */
  task?: string;
}

export interface GEdge {
  id: string;
  source: string;
  target: string;
}

export interface RunGraph {
  nodes: GNode[];
  edges: GEdge[];
  /** task id → id of the node that shows it */
  shownAs: Map<string, string>;
}

/** A group's colour: the most telling state among its tasks. */
const STATE_ORDER = ['failed', 'running', 'dispatched', 'retry_wait', 'ready', 'waiting', 'pending', 'upstream_failed', 'cancelled', 'succeeded'];

export function groupState(counts: Record<string, number>): string {
  for (const s of STATE_ORDER) if (counts[s]) return s;
  return Object.keys(counts)[0] ?? 'pending';
}

/** The group a task belongs to: its ensemble, else its node when the node has several copies. */
export function groupOf(t: TaskView, copies: Map<string, number>): string | null {
  if (t.group) return t.group;
  return (copies.get(t.node) ?? 0) > 1 ? t.node : null;
}

export function runGraph(tasks: TaskView[], expanded: ReadonlySet<string> = new Set()): RunGraph {
  const copies = new Map<string, number>();
  for (const t of tasks) copies.set(t.node, (copies.get(t.node) ?? 0) + 1);
  const shownAs = new Map<string, string>();
  const groups = new Map<string, GNode>();
  const nodes: GNode[] = [];
  for (const t of tasks) {
    const key = groupOf(t, copies);
    if (key === null || expanded.has(key)) {
      const id = `t:${t.id}`;
      shownAs.set(t.id, id);
      nodes.push({ id, label: t.id, kind: 'task', state: t.state, task: t.id });
      continue;
    }
    const id = `g:${key}`;
    shownAs.set(t.id, id);
    let g = groups.get(id);
    if (!g) {
      g = { id, label: key, kind: 'group', state: 'pending', counts: {}, key, size: 0 };
      groups.set(id, g);
      nodes.push(g);
    }
    g.counts![t.state] = (g.counts![t.state] ?? 0) + 1;
    g.size! += 1;
    if (t.state === 'ready' && t.waiting_for) {
      g.waiting = (g.waiting ?? 0) + 1;
      g.waitingFor ??= t.waiting_for;
    }
  }
  for (const g of groups.values()) g.state = groupState(g.counts!);
  const edges: GEdge[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const target = shownAs.get(t.id)!;
    for (const p of t.parents) {
      const source = shownAs.get(p);
      if (!source || source === target) continue;
      const id = `${source}->${target}`;
      if (seen.has(id)) continue;
      seen.add(id);
      edges.push({ id, source, target });
    }
  }
  return { nodes, edges, shownAs };
}

/** FNV-1a over the node ids and edges: equal shapes share one cached layout. */
export function shapeHash(nodes: { id: string }[], edges: { source: string; target: string }[]): string {
  let h = 0x811c9dc5;
  const feed = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h ^= 0x1f;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const n of nodes) feed(n.id);
  feed('|');
  for (const e of edges) feed(`${e.source}>${e.target}`);
  return `${nodes.length}.${edges.length}.${h.toString(16)}`;
}
