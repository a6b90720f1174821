// Pure: what runners offer and leave free, why parked tasks wait, and when the run page must
// refetch to learn it. Amounts read like the broker's reason texts (broker/core/fit.py `amount`):
// `1 core`, `4 cores`, `512 MiB`, `16 GiB`, `0 GPUs`.

import type { QueueOverview, RunnerResources, TaskView, UnfitEntry } from '../api/types';

export type Dimension = 'cores' | 'memory_mb' | 'gpus';
const DIMENSIONS: Dimension[] = ['cores', 'memory_mb', 'gpus'];
const LABELS: Record<Dimension, string> = { cores: 'cores', memory_mb: 'memory', gpus: 'GPUs' };

/** Python's `f"{x:g}"` for the amounts a runner offers: no trailing `.0`. */
function num(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** `8 cores`, `1 core`, `512 MiB`, `64 GiB`, `1.5 GiB`, `2 GPUs`. */
export function amount(dim: Dimension, x: number): string {
  if (dim === 'memory_mb') return x >= 1024 ? `${num(Math.round((x / 1024) * 10) / 10)} GiB` : `${num(x)} MiB`;
  const unit = dim === 'cores' ? 'core' : 'GPU';
  return `${num(x)} ${unit}${x === 1 ? '' : 's'}`;
}

const isSet = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);

/** `4 cores · 16 GiB · 0 GPUs`; a dimension the runner does not advertise has no limit. Null
 *  when it advertises none (an older worker: it takes any task). */
export function formatOffer(r: RunnerResources): string | null {
  if (!DIMENSIONS.some((d) => isSet(r[d]))) return null;
  return DIMENSIONS.map((d) => (isSet(r[d]) ? amount(d, r[d]) : `unlimited ${LABELS[d]}`)).join(' · ');
}

/** `2 cores · 8 GiB · 0 GPUs free` (only the dimensions the runner counts); null if unknown. */
export function formatFree(r: RunnerResources): string | null {
  const free: Record<Dimension, number | null | undefined> = { cores: r.free_cores, memory_mb: r.free_memory_mb, gpus: r.free_gpus };
  const parts = DIMENSIONS.filter((d) => isSet(free[d])).map((d) => amount(d, free[d]!));
  return parts.length ? `${parts.join(' · ')} free` : null;
}

/** `3 tasks wait: needs 8 cores; …`, `1 task waits: …`, `at least 5 tasks wait: …` (counted in
 *  the sampled head and tail of a long queue). */
export function unfitText(u: UnfitEntry): string {
  const n = u.tasks ?? u.tasks_in_sample;
  if (n === undefined) return u.reason;
  const who = `${u.tasks === undefined ? 'at least ' : ''}${n} task${n === 1 ? ' waits' : 's wait'}`;
  return `${who}: ${u.reason}`;
}

/** `needs 8 cores, 64 GiB` from an unfit entry's `needs` (the reason text says it too). */
export function formatNeeds(needs: Record<string, number> | undefined): string {
  const parts = DIMENSIONS.filter((d) => needs?.[d]).map((d) => amount(d, needs![d]));
  return parts.length ? `needs ${parts.join(', ')}` : '';
}

/** Why a task does not start although it is ready (parked), or null. */
export function waitingFor(t: Pick<TaskView, 'state' | 'waiting_for'>): string | null {
  return t.state === 'ready' && t.waiting_for ? t.waiting_for : null;
}

/** The head of a reason, for a small box (`needs 8 cores`); the whole text goes in its tooltip. */
export function shortReason(reason: string): string {
  const i = reason.indexOf(';');
  return i > 0 ? reason.slice(0, i) : reason;
}

/** Sorted classes that hold ready tasks of this run (where a task may be parked). */
export function readyClasses(tasks: readonly TaskView[]): string[] {
  const out = new Set<string>();
  for (const t of tasks) if (t.state === 'ready') out.add(t.class);
  return [...out].sort();
}

export interface ParkedSignature {
  /** `cpu=1;gpu=0|runners=2` */
  key: string;
  /** some ready class of the run holds parked tasks */
  parked: boolean;
}

/** Parking is not a state change (no live delta): the run page watches the parked counts of
 *  its ready tasks' classes, and the number of runners while any is parked (a new runner may
 *  change the reason). */
export function parkedSignature(classes: readonly string[], queues: Record<string, QueueOverview> | undefined, runners: number | undefined): ParkedSignature {
  const counts = classes.map((c) => `${c}=${queues?.[c]?.parked ?? 0}`).join(';');
  const parked = classes.some((c) => (queues?.[c]?.parked ?? 0) > 0);
  return { key: parked ? `${counts}|runners=${runners ?? 0}` : counts, parked };
}

/** Refetch the run when its parked signature changed and something is or was parked (the
 *  first observation, `prev` null, counts as nothing parked). */
export function shouldRefetchParked(prev: ParkedSignature | null, next: ParkedSignature): boolean {
  if (prev?.key === next.key) return false;
  return next.parked || !!prev?.parked;
}
