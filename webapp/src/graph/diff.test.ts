import { describe, expect, it } from 'vitest';
import type { WorkflowDoc } from '../api/types';
import { diffSummary, diffWorkflows, mergedGraph } from './diff';

const v1: WorkflowDoc = {
  name: 'wf', params: { n: 1 },
  nodes: { a: { command: 'echo a' }, b: { command: 'echo b', after: ['a'] }, old: { after: ['a'] } },
};
const v2: WorkflowDoc = {
  name: 'wf', params: { n: 2 },
  nodes: { a: { command: 'echo a' }, b: { after: ['a'], command: 'echo B' }, c: { after: ['b'] } },
};

describe('diffWorkflows', () => {
  it('classifies nodes, fields and edges', () => {
    const d = diffWorkflows(v1, v2);
    expect(d.nodes).toEqual({ a: 'same', b: 'changed', old: 'removed', c: 'added' });
    expect(d.fields).toEqual({ b: ['command'] });
    expect(d.edges).toEqual({ 'a->b': 'same', 'a->old': 'removed', 'b->c': 'added' });
    expect(d.workflow).toEqual(['params']);
    expect(diffSummary(d)).toEqual({ added: ['c'], removed: ['old'], changed: ['b'] });
  });

  it('ignores key order', () => {
    const d = diffWorkflows({ name: 'x', nodes: { a: { command: 'x', executor: 'shell' } } }, { name: 'x', nodes: { a: { executor: 'shell', command: 'x' } } });
    expect(d.nodes.a).toBe('same');
  });

  it('treats a missing side as empty', () => {
    expect(diffSummary(diffWorkflows(null, v1)).added).toEqual(['a', 'b', 'old']);
  });

  it('merges both revisions into one graph', () => {
    const g = mergedGraph(v1, v2, diffWorkflows(v1, v2));
    expect(g.nodes.map((n) => `${n.id}:${n.change}`)).toEqual(['a:same', 'b:changed', 'old:removed', 'c:added']);
    expect(g.edges.map((e) => `${e.id}:${e.change}`)).toEqual(['a->b:same', 'a->old:removed', 'b->c:added']);
  });
});
