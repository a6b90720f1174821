// The main thread's side of the layout worker: one worker, promises matched by request id.

import type { LayoutInput, Positions } from './layout';

let worker: Worker | null = null;
let nextId = 1;
const waiting = new Map<number, { resolve: (p: Positions) => void; reject: (e: Error) => void }>();

function getWorker(): Worker {
  if (worker) return worker;
  worker = new Worker(new URL('./layout.worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (ev: MessageEvent<{ id: number; positions?: Positions; error?: string }>) => {
    const w = waiting.get(ev.data.id);
    if (!w) return;
    waiting.delete(ev.data.id);
    if (ev.data.error) w.reject(new Error(ev.data.error));
    else w.resolve(ev.data.positions ?? {});
  };
  return worker;
}

/** Lay out a graph in the worker (callers cache the result per shape with TanStack Query). */
export function layoutInWorker(input: LayoutInput): Promise<Positions> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    getWorker().postMessage({ id, input });
  });
}
