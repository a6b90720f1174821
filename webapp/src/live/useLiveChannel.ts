// One websocket per tab. Deltas patch the run queries they name (applyRunDeltas) or invalidate
// queries; every `hello` (first connect, reconnect, broker restart) refetches everything, so
// the UI never keeps a state the broker no longer has. The same socket carries this tab's log
// follows (logFollow.ts): `log` and `error` frames go to them, never into the delta buffer.

import { useEffect, useMemo, useState } from 'react';
import type { QueryClient } from '@tanstack/react-query';
import type { Api } from '../api/Api';
import { queryKeys } from '../api/queryKeys';
import type { RunStatus } from '../api/types';
import { applyRunDeltas, isDelta, parseFrame, planDeltas, type Delta } from './deltas';
import type { Live, LiveStatus } from './LiveContext';
import { LogFollows } from './logFollow';

export type { LiveStatus } from './LiveContext';

const FLUSH_MS = 100;
const ETA_EVERY_MS = 2000;
const OPERATIONS_EVERY_MS = 1500;
const MAX_BACKOFF_MS = 10_000;
/** Queries a reconnect never needs to refetch: layouts (derived, per shape) and the schema. */
const STATIC_KEYS = new Set(['layout', 'schema']);

class Throttle {
  private last = new Map<string, number>();
  private timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly everyMs: number) {}

  run(key: string, fn: () => void): void {
    const now = Date.now();
    const wait = (this.last.get(key) ?? 0) + this.everyMs - now;
    if (wait <= 0) {
      this.last.set(key, now);
      fn();
    } else if (!this.timers.has(key)) {
      this.timers.set(key, setTimeout(() => {
        this.timers.delete(key);
        this.last.set(key, Date.now());
        fn();
      }, wait));
    }
  }

  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

function applyBatch(qc: QueryClient, batch: Delta[], eta: Throttle, ops: Throttle): void {
  const plan = planDeltas(batch);
  for (const [run, deltas] of plan.patches) {
    qc.setQueryData<RunStatus>(queryKeys.run(run), (old) => (old ? applyRunDeltas(old, deltas) : old));
  }
  for (const key of plan.invalidate) void qc.invalidateQueries({ queryKey: key });
  for (const run of plan.eta) eta.run(run, () => void qc.invalidateQueries({ queryKey: queryKeys.eta(run) }));
  if (plan.operations) {
    ops.run('ops', () => {
      void qc.invalidateQueries({ queryKey: queryKeys.queue() });
      void qc.invalidateQueries({ queryKey: queryKeys.runners() });
      void qc.invalidateQueries({ queryKey: queryKeys.runs() });
    });
  }
}

export function useLiveChannel(api: Api, qc: QueryClient, enabled: boolean): Live {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [logs] = useState(() => new LogFollows());
  useEffect(() => {
    if (!enabled) return undefined;
    let ws: WebSocket | null = null;
    let stopped = false;
    let attempt = 0;
    let buffer: Delta[] = [];
    let flushTimer: ReturnType<typeof setTimeout> | null = null;
    let retryTimer: ReturnType<typeof setTimeout> | null = null;
    const eta = new Throttle(ETA_EVERY_MS);
    const ops = new Throttle(OPERATIONS_EVERY_MS);

    const flush = () => {
      flushTimer = null;
      const batch = buffer;
      buffer = [];
      if (batch.length) applyBatch(qc, batch, eta, ops);
    };

    const connect = () => {
      const socket = new WebSocket(api.liveUrl());
      ws = socket;
      ws.onmessage = (ev: MessageEvent<string>) => {
        for (const frame of parseFrame(ev.data)) {
          if (frame.type === 'hello') {
            attempt = 0;
            buffer = [];
            setStatus('live');
            void qc.invalidateQueries({ predicate: (q) => !STATIC_KEYS.has(String(q.queryKey[0])) }); // resync from REST
            logs.connected((msg) => {
              if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
            });
          } else if (frame.type === 'log' || frame.type === 'error') {
            logs.handle(frame);
          } else if (isDelta(frame)) {
            buffer.push(frame);
          }
        }
        if (buffer.length && !flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
      };
      ws.onclose = () => {
        ws = null;
        logs.disconnected();
        if (stopped) return;
        setStatus('reconnecting');
        const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
        attempt += 1;
        retryTimer = setTimeout(connect, backoff);
      };
    };
    connect();
    return () => {
      stopped = true;
      if (flushTimer) clearTimeout(flushTimer);
      if (retryTimer) clearTimeout(retryTimer);
      eta.clear();
      ops.clear();
      logs.disconnected();
      ws?.close(1000, 'page closed');
    };
  }, [api, qc, enabled, logs]);
  return useMemo(() => ({ status, logs }), [status, logs]);
}
