import { describe, expect, it } from 'vitest';
import type { EtaTask, TaskView } from '../api/types';
import { runGraph } from './model';
import { timeline } from './timeline';

function task(id: string, node: string, state: string, started: number | null, finished: number | null, parents: string[] = []): TaskView {
  return {
    id, node, state, class: 'cpu', runner: '', reason: '', attempt: 1, priority: 0, exit_code: null,
    dispatched_at: null, started_at: started, finished_at: finished, result: null, vars: null, parents,
  };
}
const eta = (id: string, s: number, f: number): EtaTask => ({ id, state: '', expected_start: s, expected_finish: f, median_s: 1, p80_s: 2, source: 'history' });

describe('timeline', () => {
  it('has actual bars for what ran and projected bars for the rest', () => {
    const tasks = [task('a', 'a', 'succeeded', 1000, 3000), task('b', 'b', 'running', 3000, null, ['a']), task('c', 'c', 'pending', null, null, ['b'])];
    const tl = timeline(runGraph(tasks), tasks, [eta('b', 3000, 6000), eta('c', 6000, 9000)], 5000);
    expect(tl.rows.map((r) => [r.label, r.actual, r.projected])).toEqual([
      ['a', [1000, 3000], null],
      ['b', [3000, 5000], [5000, 6000]],
      ['c', null, [6000, 9000]],
    ]);
    expect([tl.start, tl.end]).toEqual([1000, 9000]);
  });

  it('never projects into the past, and a group spans its tasks', () => {
    const tasks = [task('s[0]', 's', 'succeeded', 100, 200), task('s[1]', 's', 'ready', null, null)];
    const tl = timeline(runGraph(tasks), tasks, [eta('s[1]', 50, 80)], 1000);
    expect(tl.rows).toHaveLength(1);
    expect(tl.rows[0]).toMatchObject({ label: 's', actual: [100, 200], projected: [1000, 1000] });
  });
});
