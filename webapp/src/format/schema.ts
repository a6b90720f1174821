// Pure: reading the workflow JSON Schema (msgspec's, served at /api/v1/ui/schema) into form
// fields: what input each field of a node gets.

import type { JsonSchema } from '../api/types';

export type FieldKind = 'text' | 'number' | 'integer' | 'boolean' | 'select' | 'object' | 'json' | 'textOrList';

export interface FieldSpec {
  name: string;
  kind: FieldKind;
  options?: string[];
  fields?: FieldSpec[];
  description?: string;
}

export function resolve(root: JsonSchema, s: JsonSchema): JsonSchema {
  let cur = s;
  for (let i = 0; i < 10 && cur.$ref; i++) {
    const name = cur.$ref.split('/').pop()!;
    cur = root.$defs?.[name] ?? {};
  }
  return cur;
}

function variants(root: JsonSchema, s: JsonSchema): JsonSchema[] {
  const r = resolve(root, s);
  const list = r.anyOf ?? r.oneOf as JsonSchema[] | undefined;
  if (!list) return [r];
  return list.map((v) => resolve(root, v)).filter((v) => v.type !== 'null');
}

export function fieldKind(root: JsonSchema, s: JsonSchema): Omit<FieldSpec, 'name'> {
  const vs = variants(root, s);
  const description = resolve(root, s).description ?? vs.find((v) => v.description)?.description;
  if (vs.length === 1) {
    const v = vs[0];
    if (v.enum) return { kind: 'select', options: v.enum.map(String), description };
    if (v.type === 'string') return { kind: 'text', description };
    if (v.type === 'integer') return { kind: 'integer', description };
    if (v.type === 'number') return { kind: 'number', description };
    if (v.type === 'boolean') return { kind: 'boolean', description };
    if (v.type === 'object' && v.properties) return { kind: 'object', fields: formFields(root, v), description };
    return { kind: 'json', description };
  }
  const types = vs.map((v) => v.type);
  if (types.includes('string') && types.includes('array')) return { kind: 'textOrList', description };
  if (types.every((t) => t === 'string' || t === 'integer' || t === 'number')) return { kind: 'text', description };
  return { kind: 'json', description };
}

export function formFields(root: JsonSchema, def: JsonSchema, skip: string[] = []): FieldSpec[] {
  const props = resolve(root, def).properties ?? {};
  return Object.entries(props).filter(([k]) => !skip.includes(k)).map(([name, s]) => ({ name, ...fieldKind(root, s) }));
}

/** The text typed into a field → the value stored in the document (undefined: remove the key). */
export function parseInput(kind: FieldKind, text: string): { value?: unknown; error?: string } {
  const t = text.trim();
  if (t === '') return { value: undefined };
  switch (kind) {
    case 'number':
    case 'integer': {
      const n = Number(t);
      if (!Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n))) return { error: `not ${kind === 'integer' ? 'an integer' : 'a number'}` };
      return { value: n };
    }
    case 'json':
    case 'object':
      try {
        return { value: JSON.parse(t) };
      } catch (e) {
        return { error: `invalid JSON: ${(e as Error).message}` };
      }
    case 'textOrList':
      if (t.startsWith('[')) {
        try {
          return { value: JSON.parse(t) };
        } catch (e) {
          return { error: `invalid JSON list: ${(e as Error).message}` };
        }
      }
      return { value: text };
    default:
      return { value: text };
  }
}

export function showValue(kind: FieldKind, value: unknown): string {
  if (value === undefined || value === null) return '';
  if (kind === 'json' || kind === 'object' || (kind === 'textOrList' && typeof value !== 'string')) return JSON.stringify(value, null, 1);
  return String(value);
}
