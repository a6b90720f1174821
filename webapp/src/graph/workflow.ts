// Pure: a workflow document as a graph, and the editor's operations on it. Each operation
// returns a new document (the input is never changed); an edge is `after` on its target.

import type { WorkflowDoc, WorkflowNode } from '../api/types';

export interface WfEdge {
  id: string;
  source: string;
  target: string;
}

export function edgeId(source: string, target: string): string {
  return `${source}->${target}`;
}

export function workflowEdges(doc: WorkflowDoc): WfEdge[] {
  const out: WfEdge[] = [];
  for (const [id, node] of Object.entries(doc.nodes ?? {})) {
    for (const p of node.after ?? []) if (p in doc.nodes) out.push({ id: edgeId(p, id), source: p, target: id });
  }
  return out;
}

export const NODE_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function uniqueId(doc: WorkflowDoc, base = 'task'): string {
  if (!(base in doc.nodes)) return base;
  for (let i = 2; ; i++) if (!(`${base}_${i}` in doc.nodes)) return `${base}_${i}`;
}

export function addNode(doc: WorkflowDoc, id: string, node: WorkflowNode = { executor: 'shell', command: 'echo hello' }): WorkflowDoc {
  if (id in doc.nodes) throw new Error(`a node '${id}' exists already`);
  if (!NODE_ID.test(id)) throw new Error(`invalid node id '${id}'`);
  return { ...doc, nodes: { ...doc.nodes, [id]: node } };
}

function withoutAfter(node: WorkflowNode, parent: string): WorkflowNode {
  if (!node.after?.includes(parent)) return node;
  const after = node.after.filter((p) => p !== parent);
  const out: WorkflowNode = { ...node, after };
  if (!after.length) delete out.after;
  return out;
}

export function removeNode(doc: WorkflowDoc, id: string): WorkflowDoc {
  const nodes: Record<string, WorkflowNode> = {};
  for (const [nid, node] of Object.entries(doc.nodes)) if (nid !== id) nodes[nid] = withoutAfter(node, id);
  return { ...doc, nodes };
}

/** True when `target` can already reach `source` (an edge source → target would close a cycle). */
export function wouldCycle(doc: WorkflowDoc, source: string, target: string): boolean {
  if (source === target) return true;
  const children = new Map<string, string[]>();
  for (const [id, node] of Object.entries(doc.nodes)) for (const p of node.after ?? []) children.set(p, [...(children.get(p) ?? []), id]);
  const stack = [target];
  const seen = new Set<string>();
  while (stack.length) {
    const n = stack.pop()!;
    if (n === source) return true;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(children.get(n) ?? []));
  }
  return false;
}

export function connect(doc: WorkflowDoc, source: string, target: string): WorkflowDoc {
  if (!(source in doc.nodes) || !(target in doc.nodes)) throw new Error('both ends must be nodes');
  if (wouldCycle(doc, source, target)) throw new Error(`${source} → ${target} would make a cycle`);
  const node = doc.nodes[target];
  if (node.after?.includes(source)) return doc;
  return { ...doc, nodes: { ...doc.nodes, [target]: { ...node, after: [...(node.after ?? []), source] } } };
}

export function disconnect(doc: WorkflowDoc, source: string, target: string): WorkflowDoc {
  const node = doc.nodes[target];
  if (!node) return doc;
  return { ...doc, nodes: { ...doc.nodes, [target]: withoutAfter(node, source) } };
}

export function renameNode(doc: WorkflowDoc, from: string, to: string): WorkflowDoc {
  if (from === to) return doc;
  if (to in doc.nodes) throw new Error(`a node '${to}' exists already`);
  if (!NODE_ID.test(to)) throw new Error(`invalid node id '${to}'`);
  const nodes: Record<string, WorkflowNode> = {};
  for (const [nid, node] of Object.entries(doc.nodes)) {
    const renamed = node.after?.includes(from) ? { ...node, after: node.after.map((p) => (p === from ? to : p)) } : node;
    nodes[nid === from ? to : nid] = renamed;
  }
  return { ...doc, nodes };
}

export function updateNode(doc: WorkflowDoc, id: string, node: WorkflowNode): WorkflowDoc {
  return { ...doc, nodes: { ...doc.nodes, [id]: node } };
}
