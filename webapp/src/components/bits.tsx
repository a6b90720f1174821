// Small shared pieces: state badge, progress bar, counts bar, a ticking clock.

import { useEffect, useState } from 'react';
import { STATE_ORDER_DISPLAY, stateColor } from '../format/states';

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge state-${state}`} style={{ background: stateColor(state) }}>{state || '—'}</span>;
}

export function ProgressBar({ counts, total }: { counts: Record<string, number>; total: number }) {
  return (
    <div className="progress" title={Object.entries(counts).map(([s, n]) => `${s} ${n}`).join(', ')}>
      {STATE_ORDER_DISPLAY.filter((s) => counts[s]).map((s) => (
        <div key={s} style={{ width: `${(100 * counts[s]) / Math.max(1, total)}%`, background: stateColor(s) }} />
      ))}
    </div>
  );
}

export function CountsLine({ counts }: { counts: Record<string, number> }) {
  return (
    <span className="counts">
      {STATE_ORDER_DISPLAY.filter((s) => counts[s]).map((s) => (
        <span key={s} style={{ color: stateColor(s) }}>{counts[s]} {s}</span>
      ))}
    </span>
  );
}

/** The current time, re-rendered every `everyMs`. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return <p className="error" role="alert">{error instanceof Error ? error.message : String(error)}</p>;
}
