// Resource pieces: a runner's offer and what is free, the warning for tasks no live runner can
// take, and the note on a ready task that waits for a big enough runner.

import type { RunnerResources, UnfitEntry } from '../api/types';
import { formatFree, formatNeeds, formatOffer, unfitText } from '../format/resources';

export function RunnerOffer({ runner }: { runner: RunnerResources }) {
  const offer = formatOffer(runner);
  if (!offer) return <span className="muted" title="an older worker: it does not advertise its size and takes any task">not advertised</span>;
  const free = formatFree(runner);
  return (
    <span className="offer">
      <span>{offer}</span>
      {free && <span className="muted free">{free}</span>}
    </span>
  );
}

export function UnfitWarnings({ rclass, entries }: { rclass: string; entries: UnfitEntry[] }) {
  if (!entries.length) return null;
  return (
    <ul className="warning" role="status" data-testid={`unfit-${rclass}`}>
      {entries.map((u, i) => <li key={i} title={formatNeeds(u.needs)}>⚠ {unfitText(u)}</li>)}
    </ul>
  );
}

export function WaitingNote({ reason }: { reason: string }) {
  return (
    <p className="warning" data-testid="waiting-for">
      <strong>Waiting:</strong> {reason}. It stays ready and starts when a live runner of its class can take it.
    </p>
  );
}
