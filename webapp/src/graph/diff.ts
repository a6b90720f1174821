// Pure: what changed between two revisions of a workflow, node by node and edge by edge, and
// the merged graph that shows both (removed nodes kept, marked).

import type { WorkflowDoc } from '../api/types';
import { workflowEdges, type WfEdge } from './workflow';

export type Change = 'added' | 'removed' | 'changed' | 'same';

export interface WorkflowDiff {
  nodes: Record<string, Change>;
  /** node id → fields that differ */
  fields: Record<string, string[]>;
  edges: Record<string, Change>;
  /** top-level fields (other than nodes) that differ */
  workflow: string[];
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) out[k] = canonical((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

function changedFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !equal(a[k], b[k])).sort();
}

export function diffWorkflows(from: WorkflowDoc | null, to: WorkflowDoc | null): WorkflowDiff {
  const a = from?.nodes ?? {};
  const b = to?.nodes ?? {};
  const out: WorkflowDiff = { nodes: {}, fields: {}, edges: {}, workflow: [] };
  for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!(id in a)) out.nodes[id] = 'added';
    else if (!(id in b)) out.nodes[id] = 'removed';
    else {
      const fields = changedFields(a[id], b[id]);
      out.nodes[id] = fields.length ? 'changed' : 'same';
      if (fields.length) out.fields[id] = fields;
    }
  }
  const ea = new Set(from ? workflowEdges(from).map((e) => e.id) : []);
  const eb = new Set(to ? workflowEdges(to).map((e) => e.id) : []);
  for (const id of new Set([...ea, ...eb])) out.edges[id] = !ea.has(id) ? 'added' : !eb.has(id) ? 'removed' : 'same';
  if (from && to) {
    const strip = (d: WorkflowDoc) => Object.fromEntries(Object.entries(d).filter(([k]) => k !== 'nodes'));
    out.workflow = changedFields(strip(from), strip(to));
  }
  return out;
}

export function diffSummary(d: WorkflowDiff): Record<Exclude<Change, 'same'>, string[]> {
  const pick = (c: Change) => Object.entries(d.nodes).filter(([, v]) => v === c).map(([k]) => k).sort();
  return { added: pick('added'), removed: pick('removed'), changed: pick('changed') };
}

/** Nodes and edges of both revisions, each with its change (for the visual diff). */
export function mergedGraph(from: WorkflowDoc | null, to: WorkflowDoc | null, d: WorkflowDiff): {
  nodes: { id: string; change: Change }[];
  edges: (WfEdge & { change: Change })[];
} {
  const nodes = Object.entries(d.nodes).map(([id, change]) => ({ id, change }));
  const all = new Map<string, WfEdge>();
  for (const e of [...(from ? workflowEdges(from) : []), ...(to ? workflowEdges(to) : [])]) all.set(e.id, e);
  const edges = [...all.values()].map((e) => ({ ...e, change: d.edges[e.id] ?? 'same' }));
  return { nodes, edges };
}
