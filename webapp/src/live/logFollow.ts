// Pure: following task logs over the tab's one live socket. Components call
// `follow(run, task, after, onLines)` and get an `unfollow()`; this module sends `follow_log`
// when the socket is live (and again after every reconnect / `hello`, from the last line id
// each log has delivered), `unfollow_log` when the last listener of a log goes, and routes the
// `log` frames to the listeners of that log. A listener never receives a line at or before the
// last one it saw, so a re-follow (which the broker answers from `after` on) never duplicates.
// No React and no WebSocket here: useLiveChannel plugs the socket in (connected/disconnected)
// and hands over the `log` and `error` frames.

import type { LiveErrorFrame, LogFrame, LogLine } from '../api/types';

/** The broker's limit of logs one socket follows at once (broker/api/ws_logs.py MAX_FOLLOWS). */
export const MAX_FOLLOWS = 8;

export type FollowMessage =
  | { op: 'follow_log'; run: string; task: string; after?: string }
  | { op: 'unfollow_log'; run: string; task: string };

type Send = (msg: FollowMessage) => void;
type OnLines = (lines: LogLine[]) => void;
type OnError = (message: string) => void;

interface Listener {
  /** the last line id this listener has received (or was given); null: from the first line */
  after: string | null;
  onLines: OnLines;
  onError?: OnError;
}

interface Followed {
  run: string;
  task: string;
  listeners: Set<Listener>;
  /** the broker refused to follow it (the listeners were told; they fall back to polling) */
  refused: boolean;
}

/** Stream ids `ms-seq` in order: -1, 0, 1. */
export function compareIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = Number(am) - Number(bm);
  if (ms) return Math.sign(ms);
  return Math.sign(Number(as) - Number(bs));
}

/** `lines` with only those after `after` (all of them when `after` is null). */
export function linesAfter<T extends { id: string }>(lines: readonly T[], after: string | null): T[] {
  return after === null ? lines.slice() : lines.filter((l) => compareIds(l.id, after) > 0);
}

/** The earliest position among listeners: where a (re)follow must start to serve them all. */
function earliest(f: Followed): string | null {
  let out: string | null = null;
  for (const l of f.listeners) {
    if (l.after === null) return null;
    if (out === null || compareIds(l.after, out) < 0) out = l.after;
  }
  return out;
}

const keyOf = (run: string, task: string) => `${run}\u0000${task}`;

export class LogFollows {
  private followed = new Map<string, Followed>();
  private send: Send | null = null;

  /** The socket is live (its `hello` came): (re)send a follow for every followed log, each from
   *  the last line its listeners saw. */
  connected(send: Send): void {
    this.send = send;
    let n = 0;
    for (const f of this.followed.values()) {
      n += 1;
      if (n > MAX_FOLLOWS) {
        if (!f.refused) this.refuse(f, `at most ${MAX_FOLLOWS} logs are followed at once`);
        continue;
      }
      f.refused = false;
      this.sendFollow(f);
    }
  }

  /** The socket closed: nothing is sent until the next `connected`; listeners stay. */
  disconnected(): void {
    this.send = null;
  }

  /** Whether lines of this log come over the socket now (live and not refused). */
  isLive(run: string, task: string): boolean {
    const f = this.followed.get(keyOf(run, task));
    return this.send !== null && f !== undefined && !f.refused;
  }

  /** Follow a log from `after` (a line id, or null for the first line kept). → unfollow. */
  follow(run: string, task: string, after: string | null, onLines: OnLines, onError?: OnError): () => void {
    const key = keyOf(run, task);
    const listener: Listener = { after, onLines, onError };
    let f = this.followed.get(key);
    if (!f) {
      f = { run, task, listeners: new Set(), refused: false };
      this.followed.set(key, f);
      f.listeners.add(listener);
      if (this.followed.size > MAX_FOLLOWS) this.refuse(f, `at most ${MAX_FOLLOWS} logs are followed at once`);
      else this.sendFollow(f);
    } else {
      const before = earliest(f);
      f.listeners.add(listener);
      // a listener that starts earlier than the others: the broker restarts from its position
      // (the others skip what they already have)
      if (f.refused) onError?.('the broker refused to follow this log');
      else if (before !== earliest(f)) this.sendFollow(f);
    }
    let gone = false;
    return () => {
      if (gone) return;
      gone = true;
      const cur = this.followed.get(key);
      if (!cur || !cur.listeners.delete(listener) || cur.listeners.size) return;
      this.followed.delete(key);
      if (this.send && !cur.refused) this.send({ op: 'unfollow_log', run, task });
    };
  }

  /** A `log` or `error` frame from the socket. */
  handle(frame: LogFrame | LiveErrorFrame): void {
    if (frame.type === 'error') {
      this.handleError(frame);
      return;
    }
    const f = this.followed.get(keyOf(frame.run, frame.task));
    if (!f || !Array.isArray(frame.lines)) return;
    for (const l of [...f.listeners]) {
      const fresh = linesAfter(frame.lines, l.after);
      if (!fresh.length) continue;
      l.after = fresh[fresh.length - 1].id;
      l.onLines(fresh);
    }
  }

  private handleError(frame: LiveErrorFrame): void {
    if (frame.op !== 'follow_log') return;
    const { run, task } = frame.details ?? {};
    for (const f of this.followed.values()) {
      // "no run" names only the run; "no task" both
      if (f.run === run && (task === undefined || f.task === task)) this.refuse(f, frame.message);
    }
  }

  private refuse(f: Followed, message: string): void {
    f.refused = true;
    for (const l of f.listeners) l.onError?.(message);
  }

  private sendFollow(f: Followed): void {
    if (!this.send || f.refused) return;
    const after = earliest(f);
    this.send(after === null ? { op: 'follow_log', run: f.run, task: f.task } : { op: 'follow_log', run: f.run, task: f.task, after });
  }
}
