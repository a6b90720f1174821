// Pure: the layered layout (ELK "layered") of a graph, given an ELK instance. The browser runs
// it in a Web Worker (layout.worker.ts); tests run it directly.

import type { ElkNode } from 'elkjs/lib/elk-api';

export const TASK_SIZE = { width: 190, height: 54 };
export const GROUP_SIZE = { width: 230, height: 78 };

export interface LayoutInput {
  nodes: { id: string; kind: 'task' | 'group' }[];
  edges: { id: string; source: string; target: string }[];
}
export type Positions = Record<string, { x: number; y: number }>;

export interface ElkLike {
  layout(graph: ElkNode): Promise<ElkNode>;
}

export const LAYOUT_OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.layered.spacing.nodeNodeBetweenLayers': '60',
  'elk.spacing.nodeNode': '28',
  'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
  'elk.layered.crossingMinimization.strategy': 'LAYER_SWEEP',
  'elk.edgeRouting': 'POLYLINE',
};

const LAYER_GAP = 60;

/** ELK spaces layers for its own edge routes (a 2,000-way fan-in pushes them thousands of
 *  pixels apart); React Flow draws the edges itself, so the layers are packed again, keeping
 *  ELK's order and its offsets within a layer. */
export function packLayers(pos: Positions): Positions {
  const ys = [...new Set(Object.values(pos).map((p) => p.y))].sort((a, b) => a - b);
  const layerTop = new Map<number, number>();
  let rank = -1;
  let top = 0;
  for (const y of ys) {
    if (rank < 0 || y - top >= LAYER_GAP / 2 + GROUP_SIZE.height) {
      rank += 1;
      top = y;
    }
    layerTop.set(y, rank * (GROUP_SIZE.height + LAYER_GAP) + (y - top));
  }
  const out: Positions = {};
  for (const [id, p] of Object.entries(pos)) out[id] = { x: p.x, y: layerTop.get(p.y)! };
  return out;
}

export function toElkGraph(input: LayoutInput): ElkNode {
  const ids = new Set(input.nodes.map((n) => n.id));
  return {
    id: 'root',
    layoutOptions: LAYOUT_OPTIONS,
    children: input.nodes.map((n) => ({ id: n.id, ...(n.kind === 'group' ? GROUP_SIZE : TASK_SIZE) })),
    edges: input.edges
      .filter((e) => ids.has(e.source) && ids.has(e.target))
      .map((e) => ({ id: e.id, sources: [e.source], targets: [e.target] })),
  };
}

export function positionsOf(result: ElkNode): Positions {
  const out: Positions = {};
  for (const c of result.children ?? []) out[c.id] = { x: c.x ?? 0, y: c.y ?? 0 };
  return out;
}

export async function layoutGraph(elk: ElkLike, input: LayoutInput): Promise<Positions> {
  if (!input.nodes.length) return {};
  return packLayers(positionsOf(await elk.layout(toElkGraph(input))));
}
