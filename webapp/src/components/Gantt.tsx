// The run's timeline: actual bars (solid) and projected bars from the ETA (hatched), one row per
// shown node; only the rows in view are rendered.

import { useState } from 'react';
import { formatClock, formatDuration } from '../format/time';
import { stateColor } from '../format/states';
import type { Timeline } from '../graph/timeline';

const ROW_H = 26;
const VIEW_H = 420;

export function Gantt({ data, now, onSelect }: { data: Timeline; now: number; onSelect?: (id: string) => void }) {
  const [top, setTop] = useState(0);
  const span = data.end - data.start;
  const pct = (t: number) => `${(100 * (t - data.start)) / span}%`;
  const width = (a: number, b: number) => `${Math.max(0.3, (100 * (b - a)) / span)}%`;
  const first = Math.max(0, Math.floor(top / ROW_H) - 5);
  const last = Math.min(data.rows.length, first + Math.ceil(VIEW_H / ROW_H) + 10);
  return (
    <div className="gantt" data-testid="gantt">
      <div className="gantt-axis">
        <span>{formatClock(data.start, now)}</span>
        <span>{formatDuration(span / 1000)}</span>
        <span>{formatClock(data.end, now)}</span>
      </div>
      <div className="gantt-scroll" style={{ height: Math.min(VIEW_H, data.rows.length * ROW_H + 4) }} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
        <div style={{ height: data.rows.length * ROW_H, position: 'relative' }}>
          {now >= data.start && now <= data.end && <div className="gantt-now" style={{ left: `calc(180px + (100% - 180px) * ${(now - data.start) / span})` }} />}
          {data.rows.slice(first, last).map((r, i) => (
            <div key={r.id} className="gantt-row" style={{ top: (first + i) * ROW_H, height: ROW_H }} onClick={() => onSelect?.(r.id)}>
              <div className="gantt-label" title={r.label}>{r.label}</div>
              <div className="gantt-track">
                {r.actual && <div className="bar actual" title={`${formatClock(r.actual[0], now)} → ${formatClock(r.actual[1], now)}`} style={{ left: pct(r.actual[0]), width: width(r.actual[0], r.actual[1]), background: stateColor(r.state) }} />}
                {r.projected && <div className="bar projected" title={`expected ${formatClock(r.projected[0], now)} → ${formatClock(r.projected[1], now)}`} style={{ left: pct(r.projected[0]), width: width(r.projected[0], r.projected[1]) }} />}
              </div>
            </div>
          ))}
        </div>
      </div>
      <div className="legend"><span className="bar-key actual" /> ran <span className="bar-key projected" /> expected (ETA)</div>
    </div>
  );
}
