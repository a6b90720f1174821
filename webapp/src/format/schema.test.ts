import { describe, expect, it } from 'vitest';
import type { JsonSchema } from '../api/types';
import { fieldKind, formFields, parseInput, showValue } from './schema';

const root: JsonSchema = {
  $ref: '#/$defs/Workflow',
  $defs: {
    Node: {
      type: 'object',
      properties: {
        executor: { anyOf: [{ enum: ['shell', 'python'] }, { type: 'null' }] },
        command: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] },
        retries: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }] },
        timeout: { anyOf: [{ type: 'number' }, { type: 'null' }] },
        resources: { anyOf: [{ $ref: '#/$defs/Resources' }, { type: 'null' }] },
        env: { anyOf: [{ type: 'object', additionalProperties: { type: 'string' } }, { type: 'null' }] },
        after: { type: 'array', items: { type: 'string' } },
        memory: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] },
      },
    },
    Resources: { type: 'object', properties: { cores: { type: 'number' }, class: { anyOf: [{ type: 'string' }, { type: 'null' }] } } },
  },
};

describe('schema → form fields', () => {
  it('gives each field of a node its input', () => {
    const fields = formFields(root, { $ref: '#/$defs/Node' }, ['after']);
    expect(fields.map((f) => [f.name, f.kind])).toEqual([
      ['executor', 'select'], ['command', 'textOrList'], ['retries', 'integer'], ['timeout', 'number'],
      ['resources', 'object'], ['env', 'json'], ['memory', 'text'],
    ]);
    expect(fields[0].options).toEqual(['shell', 'python']);
    expect(fields[4].fields!.map((f) => [f.name, f.kind])).toEqual([['cores', 'number'], ['class', 'text']]);
  });

  it('reads a plain array as JSON', () => {
    expect(fieldKind(root, { type: 'array', items: { type: 'string' } }).kind).toBe('json');
  });
});

describe('parseInput / showValue', () => {
  it('converts typed text, and empty removes the key', () => {
    expect(parseInput('integer', '3')).toEqual({ value: 3 });
    expect(parseInput('integer', '3.5').error).toMatch(/integer/);
    expect(parseInput('text', '  ')).toEqual({ value: undefined });
    expect(parseInput('json', '{"A":"1"}')).toEqual({ value: { A: '1' } });
    expect(parseInput('json', '{').error).toMatch(/invalid JSON/);
    expect(parseInput('textOrList', 'echo hi')).toEqual({ value: 'echo hi' });
    expect(parseInput('textOrList', '["a","b"]')).toEqual({ value: ['a', 'b'] });
  });

  it('shows stored values', () => {
    expect(showValue('textOrList', ['a'])).toBe('[\n "a"\n]');
    expect(showValue('number', 2)).toBe('2');
    expect(showValue('text', undefined)).toBe('');
  });
});
