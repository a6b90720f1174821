import { describe, expect, it } from 'vitest';
import type { RunStatus, TaskView } from '../api/types';
import { applyRunDeltas, isDelta, parseFrame, phaseOf, planDeltas, type Delta, type TaskDelta } from './deltas';

function task(id: string, state: string, parents: string[] = []): TaskView {
  return {
    id, node: id, state, class: 'cpu', runner: '', reason: '', attempt: 1, priority: 0, exit_code: null,
    dispatched_at: null, started_at: null, finished_at: null, result: null, vars: null, parents,
  };
}

function status(): RunStatus {
  return {
    run: {
      id: 'r1', name: 'wf', revision: 'abc', owner: 'alice', state: 'running', phase: 'queued', reason: '',
      counts: { ready: 1, pending: 1 }, params: {}, priority: 0, created_at: 1, started_at: 1, finished_at: null, total: 2,
    },
    messages: [],
    tasks: [task('a', 'ready'), task('b', 'pending', ['a'])],
  };
}

const t = (node: string, state: string, ts: number, extra: Partial<TaskDelta> = {}): TaskDelta => ({ type: 'task', run: 'r1', node, state, ts, ...extra });

describe('applyRunDeltas', () => {
  it('patches task states, timestamps and counts in order', () => {
    const before = status();
    const after = applyRunDeltas(before, [
      t('a', 'dispatched', 10, { attempt: 1 }),
      t('a', 'running', 11, { attempt: 1, runner: 'w1' }),
      t('a', 'succeeded', 15, { attempt: 1 }),
      t('b', 'ready', 15),
    ]);
    expect(after.tasks![0]).toMatchObject({ state: 'succeeded', runner: 'w1', dispatched_at: 10, started_at: 11, finished_at: 15 });
    expect(after.tasks![1].state).toBe('ready');
    expect(after.run.counts).toEqual({ succeeded: 1, ready: 1 });
    expect(after.run.phase).toBe('waiting');
    expect(before.tasks![0].state).toBe('ready'); // the cached object is never mutated
    expect(before.run.counts).toEqual({ ready: 1, pending: 1 });
  });

  it('returns the same object when nothing applies', () => {
    const s = status();
    expect(applyRunDeltas(s, [t('zzz', 'running', 1)])).toBe(s);
    expect(applyRunDeltas(s, [t('a', 'lost', 1, { reason: 'worker died' })])).toBe(s);
    expect(applyRunDeltas(s, [])).toBe(s);
  });

  it('applies run state deltas', () => {
    const after = applyRunDeltas(status(), [{ type: 'run', run: 'r1', state: 'cancelled', ts: 99, reason: 'by alice' }]);
    expect(after.run).toMatchObject({ state: 'cancelled', reason: 'by alice', finished_at: 99, phase: 'cancelled' });
  });

  it('never moves a finished run back', () => {
    const done = applyRunDeltas(status(), [{ type: 'run', run: 'r1', state: 'succeeded', ts: 9 }]);
    expect(applyRunDeltas(done, [{ type: 'run', run: 'r1', state: 'running', ts: 1 }])).toBe(done);
  });

  it('handles a retry: the attempt grows and the task is ready again', () => {
    const after = applyRunDeltas(status(), [
      t('a', 'running', 5, { attempt: 1 }),
      t('a', 'retry_wait', 6, { reason: 'exit 1' }),
      t('a', 'ready', 8),
      t('a', 'dispatched', 9, { attempt: 2 }),
    ]);
    expect(after.tasks![0]).toMatchObject({ state: 'dispatched', attempt: 2, reason: 'exit 1' });
    expect(after.run.counts).toEqual({ dispatched: 1, pending: 1 });
  });

  it('forgets why a parked task waited once it is dispatched (a big enough runner came)', () => {
    const s = status();
    s.tasks![0] = { ...s.tasks![0], waiting_for: "needs 4 cores; the largest live runner of class 'cpu' offers 1 core" };
    const after = applyRunDeltas(s, [t('a', 'dispatched', 10, { attempt: 1 })]);
    expect(after.tasks![0].state).toBe('dispatched');
    expect(after.tasks![0].waiting_for).toBeUndefined();
    expect(s.tasks![0].waiting_for).toMatch(/^needs 4 cores/); // the cached object is never mutated
  });

  it('drops deltas older than the snapshot (no state goes back)', () => {
    const s = status();
    s.tasks![0] = { ...s.tasks![0], state: 'succeeded', dispatched_at: 10, started_at: 11, finished_at: 15 };
    s.run.counts = { succeeded: 1, pending: 1 };
    const after = applyRunDeltas(s, [t('a', 'ready', 5), t('a', 'dispatched', 10, { attempt: 1 }), t('a', 'running', 11), t('b', 'ready', 15)]);
    expect(after.tasks![0].state).toBe('succeeded');
    expect(after.tasks![1].state).toBe('ready');
    expect(after.run.counts).toEqual({ succeeded: 1, ready: 1 });
  });

  it('copies the task list once per batch even for a 2,000-task run', () => {
    const tasks = Array.from({ length: 2000 }, (_, i) => task(`sim[${i}]`, 'ready'));
    const s: RunStatus = { ...status(), tasks, run: { ...status().run, counts: { ready: 2000 }, total: 2000 } };
    const deltas = tasks.map((x, i) => t(x.id, 'running', i));
    const after = applyRunDeltas(s, deltas);
    expect(after.run.counts).toEqual({ running: 2000 });
    expect(after.tasks!.every((x) => x.state === 'running')).toBe(true);
  });
});

describe('planDeltas', () => {
  it('groups patches per run and lists refetches once', () => {
    const plan = planDeltas([
      t('a', 'running', 1),
      t('a', 'succeeded', 2),
      { type: 'run', run: 'r2', state: 'succeeded', ts: 3 },
      { type: 'runner', runner: 'w1', state: 'draining', ts: 4 },
      { type: 'runner', runner: 'w2', state: 'gone', ts: 5 },
    ]);
    expect([...plan.patches.keys()]).toEqual(['r1', 'r2']);
    expect(plan.patches.get('r1')!.map((d) => d.state)).toEqual(['running', 'succeeded']);
    expect(plan.invalidate).toEqual([
      ['task', 'r1', 'a'], ['attempts', 'r1'], ['log', 'r1', 'a'],
      ['runs'], ['run', 'r2'], ['attempts', 'r2'], ['provenance', 'r2'],
      ['runners'], ['queue'],
    ]);
    expect([...plan.eta]).toEqual(['r1', 'r2']);
    expect(plan.operations).toBe(true);
  });
});

describe('log and error frames', () => {
  it('are no deltas: planDeltas patches and refetches nothing for them', () => {
    const frames = parseFrame(JSON.stringify([
      { type: 'log', run: 'r1', task: 'a', lines: [{ id: '1-0', attempt: 1, line: 'x' }], last_id: '1-0' },
      { type: 'error', op: 'follow_log', message: 'no run', details: { run: 'r1' } },
      { type: 'something_new', run: 'r1', node: 'a', state: 'running', ts: 1 },
      { type: 'task', run: 'r1', node: 'a', state: 'running', ts: 1 },
    ]));
    expect(frames.filter(isDelta).map((f) => f.type)).toEqual(['task']);
    const plan = planDeltas(frames as Delta[]); // even if one slipped through
    expect([...plan.patches.get('r1')!].map((d) => d.type)).toEqual(['task']);
    expect(plan.invalidate).toEqual([['task', 'r1', 'a']]);
  });
});

describe('parseFrame', () => {
  it('reads an object or an array and drops junk', () => {
    expect(parseFrame('{"type":"hello","broker":"b","user":"u","admin":false}')).toHaveLength(1);
    expect(parseFrame('[{"type":"run","run":"r","state":"running","ts":1},{"x":1}]')).toHaveLength(1);
    expect(parseFrame('not json')).toEqual([]);
  });
});

describe('phaseOf', () => {
  it('matches the broker', () => {
    expect(phaseOf('running', { ready: 2 })).toBe('queued');
    expect(phaseOf('running', { running: 1 })).toBe('running');
    expect(phaseOf('running', { succeeded: 1, ready: 1 })).toBe('waiting');
    expect(phaseOf('succeeded', {})).toBe('finished');
  });
});
