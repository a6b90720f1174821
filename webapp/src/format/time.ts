// Pure formatting of durations, ages and estimated times for display.

/** 0.4 → "0.4s", 75 → "1m 15s", 3725 → "1h 2m", 90000 → "1d 1h"; null → "unknown". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return 'unknown';
  const s = Math.max(0, seconds);
  if (s < 10) return `${Math.round(s * 10) / 10}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const total = Math.round(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  return sec ? `${m}m ${sec}s` : `${m}m`;
}

/** Seconds between two ms timestamps (never negative). */
export function secondsBetween(fromMs: number, toMs: number): number {
  return Math.max(0, (toMs - fromMs) / 1000);
}

/** An age: "3s ago"; a future time: "in 3s". */
export function formatRelative(atMs: number | null | undefined, nowMs: number): string {
  if (!atMs) return '—';
  const d = (atMs - nowMs) / 1000;
  if (Math.abs(d) < 1) return 'now';
  return d > 0 ? `in ${formatDuration(d)}` : `${formatDuration(-d)} ago`;
}

/** A clock time (HH:MM:SS, local), with the date when it is not today. */
export function formatClock(atMs: number | null | undefined, nowMs: number = Date.now()): string {
  if (!atMs) return '—';
  const t = new Date(atMs);
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  const today = new Date(nowMs);
  if (t.toDateString() === today.toDateString()) return clock;
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${clock}`;
}

/** A run's or task's estimate: never in the past (an overrunning estimate shows "any moment"). */
export function formatEta(etaMs: number | null | undefined, nowMs: number): string {
  if (etaMs === null || etaMs === undefined) return 'unknown';
  if (etaMs <= nowMs + 500) return 'any moment';
  return `${formatRelative(etaMs, nowMs)} (${formatClock(etaMs, nowMs)})`;
}

/** Where an expected duration came from, for a tooltip. */
export function describeSource(source: string, medianS: number | null, p80S: number | null): string {
  switch (source) {
    case 'history':
      return `median ${formatDuration(medianS)}, p80 ${formatDuration(p80S)} of this node's past runs`;
    case 'command':
      return `median ${formatDuration(medianS)}, p80 ${formatDuration(p80S)} of the same command elsewhere`;
    case 'walltime':
      return `walltime hint ${formatDuration(medianS)}`;
    default:
      return 'no history and no walltime hint';
  }
}

/** Percent done of a run: finished tasks over total. */
export function progress(counts: Record<string, number>, total: number | null | undefined): number {
  const n = total ?? Object.values(counts).reduce((a, b) => a + b, 0);
  if (!n) return 0;
  const done = ['succeeded', 'failed', 'upstream_failed', 'cancelled'].reduce((a, s) => a + (counts[s] ?? 0), 0);
  return Math.min(100, Math.round((done / n) * 1000) / 10);
}
