import ELK from 'elkjs/lib/elk.bundled.js';
import { describe, expect, it } from 'vitest';
import { GROUP_SIZE, layoutGraph, TASK_SIZE, toElkGraph } from './layout';

const elk = new ELK();

describe('layoutGraph (ELK layered)', () => {
  it('puts every node below its parents', async () => {
    const input = {
      nodes: [
        { id: 'a', kind: 'task' as const }, { id: 'b', kind: 'task' as const },
        { id: 'c', kind: 'group' as const }, { id: 'd', kind: 'task' as const },
      ],
      edges: [
        { id: 'a->b', source: 'a', target: 'b' }, { id: 'a->c', source: 'a', target: 'c' },
        { id: 'b->d', source: 'b', target: 'd' }, { id: 'c->d', source: 'c', target: 'd' },
      ],
    };
    const pos = await layoutGraph(elk, input);
    expect(Object.keys(pos).sort()).toEqual(['a', 'b', 'c', 'd']);
    for (const e of input.edges) expect(pos[e.target].y).toBeGreaterThan(pos[e.source].y);
    expect(pos.b.x).not.toBe(pos.c.x); // siblings side by side
  });

  it('sizes groups bigger and drops edges to unknown nodes', () => {
    const g = toElkGraph({ nodes: [{ id: 'g', kind: 'group' }, { id: 't', kind: 'task' }], edges: [{ id: 'x', source: 'g', target: 'nope' }] });
    expect(g.children).toEqual([{ id: 'g', ...GROUP_SIZE }, { id: 't', ...TASK_SIZE }]);
    expect(g.edges).toEqual([]);
  });

  it('keeps layers close under a wide fan-out and fan-in', async () => {
    const sims = Array.from({ length: 300 }, (_, i) => ({ id: `s${i}`, kind: 'task' as const }));
    const pos = await layoutGraph(elk, {
      nodes: [{ id: 'prep', kind: 'task' }, ...sims, { id: 'report', kind: 'task' }],
      edges: sims.flatMap((s) => [{ id: `p-${s.id}`, source: 'prep', target: s.id }, { id: `${s.id}-r`, source: s.id, target: 'report' }]),
    });
    expect(pos.report.y - pos.prep.y).toBeLessThan(1000);
    expect(new Set(sims.map((s) => pos[s.id].y)).size).toBe(1);
  });

  it('lays out an empty graph', async () => {
    expect(await layoutGraph(elk, { nodes: [], edges: [] })).toEqual({});
  });
});
