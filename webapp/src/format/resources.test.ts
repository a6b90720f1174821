import { describe, expect, it } from 'vitest';
import type { TaskView } from '../api/types';
import {
  amount, formatFree, formatNeeds, formatOffer, parkedSignature, readyClasses, shortReason, shouldRefetchParked, unfitText, waitingFor,
} from './resources';

describe('amount', () => {
  it.each([
    ['cores', 1, '1 core'], ['cores', 4, '4 cores'], ['cores', 0.5, '0.5 cores'], ['cores', 0, '0 cores'],
    ['memory_mb', 512, '512 MiB'], ['memory_mb', 1024, '1 GiB'], ['memory_mb', 1536, '1.5 GiB'], ['memory_mb', 16384, '16 GiB'],
    ['memory_mb', 64000, '62.5 GiB'], ['gpus', 0, '0 GPUs'], ['gpus', 1, '1 GPU'], ['gpus', 2, '2 GPUs'],
  ] as const)('%s %s → %s', (dim, x, text) => expect(amount(dim, x)).toBe(text));
});

describe('formatOffer / formatFree', () => {
  const runner = { cores: 4, memory_mb: 16384, gpus: 0, free_cores: 2, free_memory_mb: 8192, free_gpus: 0 };
  it('shows what a runner offers and what is free', () => {
    expect(formatOffer(runner)).toBe('4 cores · 16 GiB · 0 GPUs');
    expect(formatFree(runner)).toBe('2 cores · 8 GiB · 0 GPUs free');
  });
  it('tolerates an older worker that advertises nothing', () => {
    const old = { cores: null, memory_mb: null, gpus: null, free_cores: null, free_memory_mb: null, free_gpus: null };
    expect(formatOffer(old)).toBeNull();
    expect(formatFree(old)).toBeNull();
    expect(formatOffer({})).toBeNull();
    expect(formatFree({})).toBeNull();
  });
  it('says unlimited for a dimension a runner does not limit', () => {
    expect(formatOffer({ cores: 1, memory_mb: null, gpus: 2 })).toBe('1 core · unlimited memory · 2 GPUs');
    expect(formatFree({ free_cores: 0.5 })).toBe('0.5 cores free');
  });
});

describe('unfitText', () => {
  it('counts the waiting tasks in front of the reason', () => {
    const reason = "needs 8 cores; the largest live runner of class 'cpu' offers 4 cores";
    expect(unfitText({ tasks: 3, reason })).toBe(`3 tasks wait: ${reason}`);
    expect(unfitText({ tasks: 1, reason })).toBe(`1 task waits: ${reason}`);
    expect(unfitText({ tasks_in_sample: 5, reason })).toBe(`at least 5 tasks wait: ${reason}`);
    expect(unfitText({ reason })).toBe(reason);
  });
  it('formats needs', () => {
    expect(formatNeeds({ cores: 8, memory_mb: 65536 })).toBe('needs 8 cores, 64 GiB');
    expect(formatNeeds({})).toBe('');
    expect(formatNeeds(undefined)).toBe('');
  });
});

function task(id: string, state: string, cls = 'cpu', waiting_for?: string): TaskView {
  return {
    id, node: id, state, class: cls, runner: '', reason: '', attempt: 0, priority: 0, exit_code: null,
    dispatched_at: null, started_at: null, finished_at: null, result: null, vars: null, parents: [],
    ...(waiting_for ? { waiting_for } : {}),
  };
}

describe('waitingFor', () => {
  it('is the reason of a ready, parked task only', () => {
    expect(waitingFor(task('a', 'ready', 'cpu', 'needs 4 cores'))).toBe('needs 4 cores');
    expect(waitingFor(task('a', 'ready'))).toBeNull();
    expect(waitingFor({ state: 'ready', waiting_for: null })).toBeNull();
    // a stale reason on a task that moved on is not shown
    expect(waitingFor(task('a', 'running', 'cpu', 'needs 4 cores'))).toBeNull();
  });
});

describe('shortReason', () => {
  it('keeps what the task needs, up to the first semicolon', () => {
    expect(shortReason("needs 8 cores; the largest live runner of class 'cpu' offers 4 cores")).toBe('needs 8 cores');
    expect(shortReason("needs 8 cores and 64 GiB of memory on one runner; no live runner of class 'cpu' offers all of them (…)"))
      .toBe('needs 8 cores and 64 GiB of memory on one runner');
    expect(shortReason("a live runner of class 'cpu' big enough for it")).toBe("a live runner of class 'cpu' big enough for it");
  });
});

describe('parked watch', () => {
  const tasks = [task('a', 'ready', 'gpu'), task('b', 'ready', 'cpu'), task('c', 'running', 'big'), task('d', 'ready', 'cpu')];
  it('watches the classes of ready tasks', () => {
    expect(readyClasses(tasks)).toEqual(['cpu', 'gpu']);
    expect(readyClasses([])).toEqual([]);
  });
  it('refetches when tasks get parked, their count or the runners change, or they leave', () => {
    const q = (cpu: number, gpu = 0) => ({ cpu: { ready: 2, parked: cpu, in_flight: 0, capacity: 1 }, gpu: { ready: 1, parked: gpu, in_flight: 0, capacity: 0 } });
    const none = parkedSignature(['cpu', 'gpu'], q(0), 1);
    const one = parkedSignature(['cpu', 'gpu'], q(1), 1);
    expect(none).toEqual({ key: 'cpu=0;gpu=0', parked: false });
    expect(one).toEqual({ key: 'cpu=1;gpu=0|runners=1', parked: true });
    expect(shouldRefetchParked(null, none)).toBe(false); // nothing parked: the run as fetched is right
    expect(shouldRefetchParked(null, one)).toBe(true); // parked before the page looked
    expect(shouldRefetchParked(none, one)).toBe(true);
    expect(shouldRefetchParked(one, one)).toBe(false);
    expect(shouldRefetchParked(one, parkedSignature(['cpu', 'gpu'], q(2), 1))).toBe(true);
    expect(shouldRefetchParked(one, parkedSignature(['cpu', 'gpu'], q(1), 2))).toBe(true); // a runner came
    expect(shouldRefetchParked(one, none)).toBe(true); // unparked
    expect(shouldRefetchParked(none, parkedSignature(['cpu', 'gpu'], q(0), 3))).toBe(false);
    expect(shouldRefetchParked(none, parkedSignature(['cpu'], q(0), 1))).toBe(false);
    // an older broker without `parked`
    expect(parkedSignature(['cpu'], { cpu: { ready: 1, in_flight: 0, capacity: 1 } }, 1)).toEqual({ key: 'cpu=0', parked: false });
  });
});
