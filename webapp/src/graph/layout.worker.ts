// The layout Web Worker: ELK runs here, off the main thread.

import ELK from 'elkjs/lib/elk.bundled.js';
import { layoutGraph, type LayoutInput } from './layout';

const elk = new ELK();

self.onmessage = async (ev: MessageEvent<{ id: number; input: LayoutInput }>) => {
  const { id, input } = ev.data;
  try {
    const positions = await layoutGraph(elk, input);
    (self as unknown as Worker).postMessage({ id, positions });
  } catch (e) {
    (self as unknown as Worker).postMessage({ id, error: String(e) });
  }
};
