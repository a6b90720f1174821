import { describe, expect, it } from 'vitest';
import type { TaskView } from '../api/types';
import { groupState, runGraph, shapeHash } from './model';

function task(id: string, node: string, state: string, parents: string[] = [], group?: string): TaskView {
  return {
    id, node, state, class: 'cpu', runner: '', reason: '', attempt: 1, priority: 0, exit_code: null,
    dispatched_at: null, started_at: null, finished_at: null, result: null, vars: null, parents, ...(group ? { group } : {}),
  };
}

function fanOut(n: number): TaskView[] {
  const sims = Array.from({ length: n }, (_, i) => task(`sim[${i}]`, 'sim', i % 3 === 0 ? 'running' : 'succeeded', ['prep']));
  return [task('prep', 'prep', 'succeeded'), ...sims, task('report', 'report', 'pending', sims.map((s) => s.id))];
}

describe('runGraph', () => {
  it('collapses matrix copies into one group node with counts by state', () => {
    const g = runGraph(fanOut(2000));
    expect(g.nodes.map((n) => n.id)).toEqual(['t:prep', 'g:sim', 't:report']);
    const sim = g.nodes[1];
    expect(sim).toMatchObject({ kind: 'group', size: 2000, state: 'running', counts: { running: 667, succeeded: 1333 } });
    expect(g.edges.map((e) => e.id)).toEqual(['t:prep->g:sim', 'g:sim->t:report']);
    expect(g.shownAs.get('sim[5]')).toBe('g:sim');
  });

  it('expands a group on demand', () => {
    const g = runGraph(fanOut(3), new Set(['sim']));
    expect(g.nodes.map((n) => n.id)).toEqual(['t:prep', 't:sim[0]', 't:sim[1]', 't:sim[2]', 't:report']);
    expect(g.edges).toHaveLength(6);
  });

  it('groups ensemble members by their ensemble', () => {
    const tasks = [task('ens[0].a', 'ens.a', 'ready', [], 'ens'), task('ens[1].a', 'ens.a', 'failed', [], 'ens')];
    const g = runGraph(tasks);
    expect(g.nodes).toHaveLength(1);
    expect(g.nodes[0]).toMatchObject({ id: 'g:ens', state: 'failed', size: 2 });
  });

  it('counts the ready members parked for want of a big enough runner', () => {
    const reason = "needs 4 cores; the largest live runner of class 'cpu' offers 1 core";
    const sims = fanOut(3).map((t) => (t.node === 'sim' ? { ...t, state: 'ready', waiting_for: t.id === 'sim[0]' ? undefined : reason } : t));
    const g = runGraph(sims);
    expect(g.nodes[1]).toMatchObject({ id: 'g:sim', waiting: 2, waitingFor: reason });
    expect(g.nodes[0].waiting).toBeUndefined();
    expect(runGraph(fanOut(3)).nodes[1].waiting).toBeUndefined();
  });
});

describe('groupState', () => {
  it('prefers the most telling state', () => {
    expect(groupState({ succeeded: 5, failed: 1 })).toBe('failed');
    expect(groupState({ succeeded: 5 })).toBe('succeeded');
    expect(groupState({ pending: 1, ready: 2 })).toBe('ready');
  });
});

describe('shapeHash', () => {
  it('is equal for equal shapes and differs otherwise', () => {
    const a = runGraph(fanOut(10));
    const b = runGraph(fanOut(10));
    const c = runGraph(fanOut(10), new Set(['sim']));
    expect(shapeHash(a.nodes, a.edges)).toBe(shapeHash(b.nodes, b.edges));
    expect(shapeHash(a.nodes, a.edges)).not.toBe(shapeHash(c.nodes, c.edges));
  });
});
