// One task: state, attempts, runner, exit code, timing, ETA, result, its log (followed over the
// live socket while it runs, REST polling as the fallback; then fetched in ranges), and "redo
// from here" once the run has finished.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import type { EtaTask, TaskView } from '../api/types';
import { shortReason, waitingFor } from '../format/resources';
import { describeSource, formatClock, formatDuration, formatEta } from '../format/time';
import { ErrorText, StateBadge } from './bits';
import { useLive } from '../live/LiveContext';
import { linesAfter } from '../live/logFollow';
import { WaitingNote } from './resources';

const FINAL_RUN = new Set(['succeeded', 'failed', 'cancelled']);

type Line = { id: string; line: string };

const POLL_MS = 2000;
const lastId = (lines: readonly Line[]): string | null => (lines.length ? lines[lines.length - 1].id : null);
const appendNew = (lines: Line[], fresh: readonly Line[]): Line[] => {
  const add = linesAfter(fresh, lastId(lines));
  return add.length ? [...lines, ...add] : lines;
};

/** The first REST page of the log, then what follows it: while the task runs (and "follow" is
 *  ticked) new lines come over the live socket from the page's last line on; REST polling is the
 *  fallback only while the socket is not live (or the broker refused the follow). When the task
 *  ends the page is fetched once more, for the final lines. */
function LogView({ run, task, running }: { run: string; task: string; running: boolean }) {
  const api = useApi();
  const qc = useQueryClient();
  const live = useLive();
  const logs = live?.logs;
  const [follow, setFollow] = useState(true);
  const [refused, setRefused] = useState(false);
  const [more, setMore] = useState<Line[]>([]); // after the first page: "load more" or the socket
  const following = running && follow;
  const overSocket = following && live?.status === 'live' && !refused;
  const first = useQuery({
    queryKey: queryKeys.log(run, task),
    queryFn: () => api.taskLog(run, task),
    refetchInterval: following && !overSocket ? POLL_MS : false, // fallback: the socket is down
  });
  const page = first.data;
  const lines: Line[] = [...(page?.lines ?? [])];
  lines.push(...linesAfter(more, lastId(lines))); // a refetched page may hold some of them
  const last = useRef<string | null>(null);
  last.current = lastId(lines) ?? page?.next ?? null;
  const loaded = page !== undefined;
  useEffect(() => {
    if (!following || !logs || !loaded) return undefined;
    return logs.follow(run, task, last.current, (fresh) => setMore((m) => appendNew(m, fresh)), () => setRefused(true));
  }, [following, logs, loaded, run, task]);
  const wasRunning = useRef(running);
  useEffect(() => {
    if (wasRunning.current && !running) void qc.refetchQueries({ queryKey: queryKeys.log(run, task) }, { cancelRefetch: false });
    wasRunning.current = running;
  }, [running, qc, run, task]);
  const next = last.current;
  const loadMore = async () => {
    if (!next) return;
    const p = await api.taskLog(run, task, next);
    setMore((m) => appendNew(m, p.lines));
  };
  const streamed = page?.streamed || lines.length > 0;
  return (
    <div className="log">
      <div className="row">
        <strong>Log</strong>
        {running && <label className="inline"><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> follow</label>}
        {following && <span className="muted" data-testid="log-follow" title={overSocket ? 'new lines come over the live channel' : 'the live channel is down: polling every 2 s'}>{overSocket ? 'live' : 'polling'}</span>}
        {streamed && next && !overSocket && <button className="mini" onClick={loadMore}>load more</button>}
      </div>
      <ErrorText error={first.error} />
      <pre data-testid="task-log">{streamed ? lines.map((l) => l.line).join('\n') : page?.tail || (page ? '(no output yet)' : 'loading…')}</pre>
    </div>
  );
}

export function TaskPanel({ run, runState, task, eta, now }: { run: string; runState: string; task: TaskView; eta?: EtaTask; now: number }) {
  const api = useApi();
  const navigate = useNavigate();
  const detail = useQuery({ queryKey: queryKeys.task(run, task.id), queryFn: () => api.task(run, task.id) });
  const attempts = useQuery({ queryKey: queryKeys.attempts(run), queryFn: () => api.attempts(run) });
  const redo = useMutation({
    mutationFn: () => api.redo(run, task.id),
    onSuccess: (out) => navigate(`/runs/${out.run}`),
  });
  const mine = (attempts.data?.attempts ?? []).filter((a) => a.task === task.id);
  const spec = detail.data?.spec;
  const started = task.started_at;
  const finished = task.finished_at;
  // the run's copy, else the task's own fetch (refetched on each of its deltas) if still ready
  const fresh = detail.data?.task;
  const waiting = waitingFor(task) ?? (fresh && task.state === 'ready' ? waitingFor(fresh) : null);
  return (
    <aside className="panel" data-testid="task-panel">
      <h3>{task.id} <StateBadge state={task.state} /></h3>
      {waiting && <WaitingNote reason={waiting} />}
      <dl className="facts">
        <dt>node</dt><dd>{task.node}</dd>
        <dt>attempt</dt><dd>{task.attempt ?? '—'}</dd>
        <dt>class</dt><dd>{task.class}</dd>
        <dt>runner</dt><dd>{task.runner || '—'}</dd>
        <dt>exit code</dt><dd data-testid="exit-code">{task.exit_code ?? '—'}</dd>
        <dt>started</dt><dd>{formatClock(started, now)}</dd>
        <dt>finished</dt><dd>{formatClock(finished, now)}</dd>
        <dt>duration</dt><dd>{started ? formatDuration(((finished ?? now) - started) / 1000) : '—'}</dd>
        {eta && !finished && <><dt>expected</dt><dd title={describeSource(eta.source, eta.median_s, eta.p80_s)}>finish {formatEta(eta.expected_finish, now)} · {eta.source}</dd></>}
        {task.reason && <><dt>reason</dt><dd className="error">{task.reason}</dd></>}
        {task.vars && <><dt>values</dt><dd><code>{JSON.stringify(task.vars)}</code></dd></>}
      </dl>
      {spec && <details><summary>spec</summary><pre>{JSON.stringify(spec, null, 2)}</pre></details>}
      {task.result != null && <details open><summary>result</summary><pre data-testid="task-result">{JSON.stringify(task.result, null, 2)}</pre></details>}
      {mine.length > 0 && (
        <table className="table small">
          <thead><tr><th>#</th><th>state</th><th>runner</th><th>duration</th><th>exit</th><th>reason</th></tr></thead>
          <tbody>{mine.map((a) => (
            <tr key={a.attempt}><td>{a.attempt}</td><td><StateBadge state={a.state} /></td><td>{a.runner ?? ''}</td>
              <td>{a.duration_ms != null ? formatDuration(a.duration_ms / 1000) : ''}</td><td>{a.exit_code ?? ''}</td><td>{a.reason ?? ''}</td></tr>
          ))}</tbody>
        </table>
      )}
      <LogView key={`${run}/${task.id}`} run={run} task={task.id} running={task.state === 'running' || task.state === 'dispatched'} />
      <div className="row">
        <button disabled={!FINAL_RUN.has(runState) || redo.isPending} title={FINAL_RUN.has(runState) ? 'a new run: this node and its descendants run again' : 'the run has not finished'} onClick={() => redo.mutate()}>
          {task.state === 'failed' ? 'Retry (redo from here)' : 'Redo from here'}
        </button>
      </div>
      <ErrorText error={redo.error} />
    </aside>
  );
}

export function GroupPanel({ label, tasks, onPick, onToggle, expanded }: { label: string; tasks: TaskView[]; onPick: (id: string) => void; onToggle: () => void; expanded: boolean }) {
  const [limit, setLimit] = useState(200);
  const counts: Record<string, number> = {};
  for (const t of tasks) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return (
    <aside className="panel" data-testid="group-panel">
      <h3>{label} <span className="muted">× {tasks.length}</span></h3>
      <p>{Object.entries(counts).map(([s, n]) => <span key={s} className="chip"><StateBadge state={s} /> {n}</span>)}</p>
      <button onClick={onToggle}>{expanded ? 'Collapse group' : 'Expand in the graph'}</button>
      <ul className="members">
        {tasks.slice(0, limit).map((t) => (
          <li key={t.id}><button className="link" onClick={() => onPick(t.id)}>{t.id}</button> <StateBadge state={t.state} />{waitingFor(t) && <span className="box-waiting" title={t.waiting_for ?? ''}> waiting: {shortReason(t.waiting_for!)}</span>}</li>
        ))}
      </ul>
      {tasks.length > limit && <button className="mini" onClick={() => setLimit((n) => n + 500)}>show more ({tasks.length - limit} left)</button>}
    </aside>
  );
}
