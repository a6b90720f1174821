import { describe, expect, it } from 'vitest';
import type { WorkflowDoc } from '../api/types';
import { addNode, connect, disconnect, removeNode, renameNode, uniqueId, workflowEdges, wouldCycle } from './workflow';

const doc: WorkflowDoc = {
  name: 'wf',
  nodes: { a: { command: 'echo a' }, b: { command: 'echo b', after: ['a'] }, c: { after: ['b'] } },
};

describe('editor operations', () => {
  it('derives edges from after', () => {
    expect(workflowEdges(doc).map((e) => e.id)).toEqual(['a->b', 'b->c']);
  });

  it('adds a node with a unique id', () => {
    const id = uniqueId(doc, 'a');
    expect(id).toBe('a_2');
    const next = addNode(doc, id);
    expect(Object.keys(next.nodes)).toEqual(['a', 'b', 'c', 'a_2']);
    expect(Object.keys(doc.nodes)).toHaveLength(3);
    expect(() => addNode(doc, 'a')).toThrow(/exists/);
    expect(() => addNode(doc, '-bad')).toThrow(/invalid/);
  });

  it('removes a node and every edge to it', () => {
    const next = removeNode(doc, 'b');
    expect(next.nodes).toEqual({ a: { command: 'echo a' }, c: {} });
  });

  it('connects and disconnects, refusing cycles', () => {
    const next = connect(doc, 'a', 'c');
    expect(next.nodes.c.after).toEqual(['b', 'a']);
    expect(connect(next, 'a', 'c')).toBe(next);
    expect(wouldCycle(doc, 'c', 'a')).toBe(true);
    expect(() => connect(doc, 'c', 'a')).toThrow(/cycle/);
    expect(disconnect(doc, 'a', 'b').nodes.b).toEqual({ command: 'echo b' });
  });

  it('renames a node and its references', () => {
    const next = renameNode(doc, 'b', 'build');
    expect(Object.keys(next.nodes)).toEqual(['a', 'build', 'c']);
    expect(next.nodes.c.after).toEqual(['build']);
    expect(() => renameNode(doc, 'a', 'c')).toThrow(/exists/);
  });
});
