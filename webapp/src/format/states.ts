// Colours of task and run states (one palette for the graph, the timeline and badges).

export const STATE_COLORS: Record<string, string> = {
  pending: '#9aa4b2',
  new: '#9aa4b2',
  expanding: '#93c5fd',
  ready: '#60a5fa',
  waiting: '#22d3ee',
  dispatched: '#818cf8',
  running: '#f59e0b',
  retry_wait: '#fb923c',
  succeeded: '#22c55e',
  finished: '#22c55e',
  failed: '#ef4444',
  upstream_failed: '#c084fc',
  cancelled: '#6b7280',
  queued: '#60a5fa',
};

export function stateColor(state: string): string {
  return STATE_COLORS[state] ?? '#9aa4b2';
}

export const STATE_ORDER_DISPLAY = ['succeeded', 'running', 'dispatched', 'ready', 'waiting', 'retry_wait', 'pending', 'failed', 'upstream_failed', 'cancelled'];
