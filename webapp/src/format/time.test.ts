import { describe, expect, it } from 'vitest';
import { describeSource, formatDuration, formatEta, formatRelative, progress } from './time';

describe('formatDuration', () => {
  it.each([
    [null, 'unknown'], [0, '0s'], [0.44, '0.4s'], [9.96, '10s'], [42, '42s'], [60, '1m'], [75, '1m 15s'],
    [3600, '1h'], [3725, '1h 2m'], [90000, '1d 1h'], [-5, '0s'],
  ])('%s → %s', (s, text) => expect(formatDuration(s as number | null)).toBe(text));
});

describe('formatEta', () => {
  const now = new Date(2024, 0, 2, 10, 0, 0).getTime();
  it('shows the time left and the clock time', () => {
    expect(formatEta(now + 90_000, now)).toBe('in 1m 30s (10:01:30)');
  });
  it('is never in the past', () => {
    expect(formatEta(now - 60_000, now)).toBe('any moment');
    expect(formatEta(now, now)).toBe('any moment');
  });
  it('says unknown without an estimate', () => {
    expect(formatEta(null, now)).toBe('unknown');
  });
  it('shows the date for another day', () => {
    expect(formatEta(now + 86_400_000 * 2, now)).toBe('in 2d (2024-01-04 10:00:00)');
  });
});

describe('formatRelative', () => {
  it('ages and future times', () => {
    expect(formatRelative(1000, 6000)).toBe('5s ago');
    expect(formatRelative(8000, 6000)).toBe('in 2s');
    expect(formatRelative(null, 6000)).toBe('—');
  });
});

describe('describeSource', () => {
  it('names where a duration comes from', () => {
    expect(describeSource('history', 12, 20)).toBe("median 12s, p80 20s of this node's past runs");
    expect(describeSource('walltime', 3600, 3600)).toBe('walltime hint 1h');
    expect(describeSource('unknown', null, null)).toBe('no history and no walltime hint');
  });
});

describe('progress', () => {
  it('counts finished tasks', () => {
    expect(progress({ succeeded: 1, running: 1, failed: 1, pending: 1 }, 4)).toBe(50);
    expect(progress({}, 0)).toBe(0);
  });
});
