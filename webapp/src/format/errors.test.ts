import { describe, expect, it } from 'vitest';
import { firstError, nodeErrors } from './errors';

describe('nodeErrors', () => {
  it('maps validation items to nodes and fields', () => {
    const e = nodeErrors("node 'b', field 'after': unknown node 'x' (and 1 more)", {
      node: 'b', field: 'after',
      errors: [
        { node: 'b', field: 'after', message: "unknown node 'x'", path: '$.nodes.b.after' },
        { node: 'c', field: 'resources.cores', message: 'must be > 0' },
        { field: 'params', message: 'bad default' },
      ],
    });
    expect(e.nodes).toEqual({ b: { after: "unknown node 'x'" }, c: { resources: 'must be > 0' } });
    expect(e.workflow).toEqual(['params: bad default']);
    expect(firstError(e, 'c')).toBe('resources: must be > 0');
    expect(firstError(e, 'a')).toBeUndefined();
  });

  it('reads a single error without a list', () => {
    const e = nodeErrors('the workflow has a cycle', { node: 'a' });
    expect(e.nodes).toEqual({ a: { _: 'the workflow has a cycle' } });
  });
});
