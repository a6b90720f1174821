// Pure: a publish error from the API → messages per node and field (shown on the graph and in
// the form), and the rest for the whole workflow.

import type { ValidationItem } from '../api/types';

export interface NodeErrors {
  /** node id → field → message */
  nodes: Record<string, Record<string, string>>;
  /** messages not about one node */
  workflow: string[];
}

export function nodeErrors(message: string, details: Record<string, unknown>): NodeErrors {
  const out: NodeErrors = { nodes: {}, workflow: [] };
  const items = Array.isArray(details.errors) ? (details.errors as ValidationItem[]) : [{ ...(details as object), message } as ValidationItem];
  for (const item of items) {
    const node = typeof item.node === 'string' ? item.node : undefined;
    const msg = item.message ?? message;
    if (node) {
      const field = item.field && item.field !== 'nodes' ? item.field.split('.')[0] : '_';
      out.nodes[node] = { ...out.nodes[node], [field]: msg };
    } else {
      out.workflow.push(item.field ? `${item.field}: ${msg}` : msg);
    }
  }
  return out;
}

/** The first message for a node (shown on its box). */
export function firstError(errors: NodeErrors, node: string): string | undefined {
  const e = errors.nodes[node];
  if (!e) return undefined;
  const [field, msg] = Object.entries(e)[0];
  return field === '_' ? msg : `${field}: ${msg}`;
}
