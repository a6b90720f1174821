// The main thread's side of the layout: elkjs's own Web Worker (elk-worker.min.js) runs ELK;
// the main thread only sends the graph and receives positions.

import ELK from 'elkjs/lib/elk-api.js';
import workerUrl from 'elkjs/lib/elk-worker.min.js?url';
import { layoutGraph, type LayoutInput, type Positions } from './layout';

let elk: InstanceType<typeof ELK> | null = null;

/** Lay out a graph off the main thread (callers cache the result per shape with TanStack Query). */
export function layoutInWorker(input: LayoutInput): Promise<Positions> {
  elk ??= new ELK({ workerUrl });
  return layoutGraph(elk, input);
}
