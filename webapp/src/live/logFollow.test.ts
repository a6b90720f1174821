import { describe, expect, it } from 'vitest';
import type { LogFrame, LogLine } from '../api/types';
import { compareIds, linesAfter, LogFollows, MAX_FOLLOWS, type FollowMessage } from './logFollow';

const line = (id: string, text = `line ${id}`): LogLine => ({ id, attempt: 1, line: text });
const frame = (run: string, task: string, ids: string[]): LogFrame => ({
  type: 'log', run, task, lines: ids.map((id) => line(id)), last_id: ids[ids.length - 1],
});

/** A follower plugged into a fake socket that records what it sent. */
function setup() {
  const logs = new LogFollows();
  const sent: FollowMessage[] = [];
  const connect = () => logs.connected((m) => sent.push(m));
  return { logs, sent, connect };
}

function collect() {
  const got: string[] = [];
  return { got, onLines: (lines: LogLine[]) => got.push(...lines.map((l) => l.id)) };
}

describe('compareIds / linesAfter', () => {
  it('orders stream ids numerically, not as text', () => {
    expect(compareIds('9-0', '10-0')).toBe(-1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('10-1', '10-1')).toBe(0);
    expect(compareIds('1700000000001-0', '1700000000000-5')).toBe(1);
    expect(linesAfter([line('9-0'), line('10-0'), line('11-0')], '9-0').map((l) => l.id)).toEqual(['10-0', '11-0']);
    expect(linesAfter([line('1-0')], null)).toHaveLength(1);
  });
});

describe('LogFollows', () => {
  it('sends follow_log only while connected, from the given position', () => {
    const { logs, sent, connect } = setup();
    logs.follow('r1', 'a', '5-0', () => {});
    expect(sent).toEqual([]); // no socket yet
    expect(logs.isLive('r1', 'a')).toBe(false);
    connect();
    expect(sent).toEqual([{ op: 'follow_log', run: 'r1', task: 'a', after: '5-0' }]);
    expect(logs.isLive('r1', 'a')).toBe(true);
    logs.follow('r1', 'b', null, () => {}); // from the first line kept: no `after`
    expect(sent[1]).toEqual({ op: 'follow_log', run: 'r1', task: 'b' });
  });

  it('follows again after every hello from the last id seen, and never repeats a line', () => {
    const { logs, sent, connect } = setup();
    connect();
    const { got, onLines } = collect();
    logs.follow('r1', 'a', '1-0', onLines);
    logs.handle(frame('r1', 'a', ['2-0', '3-0']));
    logs.disconnected();
    logs.handle(frame('r1', 'a', ['4-0'])); // nothing is sent while down, but a late frame still counts
    expect(sent).toHaveLength(1);
    connect(); // reconnect: hello
    expect(sent[1]).toEqual({ op: 'follow_log', run: 'r1', task: 'a', after: '4-0' });
    // the broker answers from `after`; a frame that overlaps what was seen adds only the new lines
    logs.handle(frame('r1', 'a', ['3-0', '4-0', '5-0']));
    logs.handle(frame('r1', 'a', ['5-0']));
    logs.handle(frame('r1', 'a', ['1-0'])); // at or before the start position
    expect(got).toEqual(['2-0', '3-0', '4-0', '5-0']);
  });

  it('sends unfollow_log only when the last listener of a log goes', () => {
    const { logs, sent, connect } = setup();
    connect();
    const one = collect();
    const two = collect();
    const stopOne = logs.follow('r1', 'a', '1-0', one.onLines);
    const stopTwo = logs.follow('r1', 'a', '1-0', two.onLines);
    expect(sent).toHaveLength(1); // one follow for both
    logs.handle(frame('r1', 'a', ['2-0']));
    stopOne();
    stopOne(); // twice is harmless
    expect(sent).toHaveLength(1);
    logs.handle(frame('r1', 'a', ['3-0']));
    stopTwo();
    expect(sent[1]).toEqual({ op: 'unfollow_log', run: 'r1', task: 'a' });
    expect(logs.isLive('r1', 'a')).toBe(false);
    expect(one.got).toEqual(['2-0']);
    expect(two.got).toEqual(['2-0', '3-0']);
    logs.handle(frame('r1', 'a', ['4-0'])); // a frame in flight after the unfollow
    expect(two.got).toEqual(['2-0', '3-0']);
    connect(); // a reconnect does not follow it again
    expect(sent).toHaveLength(2);
  });

  it('ignores frames of other logs', () => {
    const { logs, connect } = setup();
    connect();
    const { got, onLines } = collect();
    logs.follow('r1', 'a', null, onLines);
    logs.handle(frame('r1', 'b', ['2-0']));
    logs.handle(frame('r2', 'a', ['3-0']));
    logs.handle(frame('r1', 'a', ['4-0']));
    expect(got).toEqual(['4-0']);
  });

  it('restarts the follow when a listener starts earlier; the others get no line twice', () => {
    const { logs, sent, connect } = setup();
    connect();
    const late = collect();
    const early = collect();
    logs.follow('r1', 'a', '5-0', late.onLines);
    logs.handle(frame('r1', 'a', ['6-0']));
    logs.follow('r1', 'a', '2-0', early.onLines);
    expect(sent[1]).toEqual({ op: 'follow_log', run: 'r1', task: 'a', after: '2-0' });
    logs.handle(frame('r1', 'a', ['3-0', '4-0', '5-0', '6-0', '7-0']));
    expect(late.got).toEqual(['6-0', '7-0']);
    expect(early.got).toEqual(['3-0', '4-0', '5-0', '6-0', '7-0']);
    logs.follow('r1', 'a', '7-0', () => {}); // starts later than the others: nothing to resend
    expect(sent).toHaveLength(2);
  });

  it('tells the listeners when the broker refuses a follow, and stops counting it live', () => {
    const { logs, sent, connect } = setup();
    connect();
    const errors: string[] = [];
    const stop = logs.follow('r1', 'gone', null, () => {}, (m) => errors.push(m));
    logs.follow('r1', 'a', null, () => {}, (m) => errors.push(`a: ${m}`));
    logs.handle({ type: 'error', op: 'follow_log', message: "no task 'gone' in run 'r1'", details: { run: 'r1', task: 'gone' } });
    logs.handle({ type: 'error', op: 'unfollow_log', message: 'x', details: { run: 'r1' } }); // not a follow
    expect(errors).toEqual(["no task 'gone' in run 'r1'"]);
    expect(logs.isLive('r1', 'gone')).toBe(false);
    expect(logs.isLive('r1', 'a')).toBe(true);
    stop();
    expect(sent.filter((m) => m.op === 'unfollow_log')).toEqual([]); // nothing to unfollow
  });

  it('keeps to the broker limit of follows per socket', () => {
    const { logs, sent, connect } = setup();
    connect();
    const errors: string[] = [];
    const stops = Array.from({ length: MAX_FOLLOWS + 1 }, (_, i) => logs.follow('r1', `t${i}`, null, () => {}, (m) => errors.push(`t${i}: ${m}`)));
    expect(sent).toHaveLength(MAX_FOLLOWS);
    expect(errors).toEqual([`t${MAX_FOLLOWS}: at most ${MAX_FOLLOWS} logs are followed at once`]);
    expect(logs.isLive('r1', `t${MAX_FOLLOWS}`)).toBe(false);
    stops[0]();
    connect(); // after a reconnect the refused one gets the free place
    expect(sent.slice(-MAX_FOLLOWS).map((m) => m.task)).toEqual(Array.from({ length: MAX_FOLLOWS }, (_, i) => `t${i + 1}`));
    expect(logs.isLive('r1', `t${MAX_FOLLOWS}`)).toBe(true);
  });
});
