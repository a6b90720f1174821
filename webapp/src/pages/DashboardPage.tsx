// Queues per resource class (with parked tasks and why they wait), runners (what they offer and
// leave free; drain/shutdown), active runs with progress and ETA, and the latest finished runs.

import { useMutation, useQuery } from '@tanstack/react-query';
import { Fragment } from 'react';
import { Link } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import type { RunView } from '../api/types';
import { ErrorText, ProgressBar, StateBadge, useNow } from '../components/bits';
import { RunnerOffer, UnfitWarnings } from '../components/resources';
import { formatClock, formatDuration, formatEta, formatRelative, progress } from '../format/time';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

function RunEta({ run }: { run: string }) {
  const api = useApi();
  const now = useNow();
  const eta = useQuery({ queryKey: queryKeys.eta(run), queryFn: () => api.eta(run) });
  if (eta.error) return <span className="muted">—</span>;
  return <span>{eta.data ? formatEta(eta.data.eta, now) : '…'}</span>;
}

function Queues() {
  const api = useApi();
  // parking is no state change (no live delta): poll so a newly parked task shows up
  const q = useQuery({ queryKey: queryKeys.queue(), queryFn: () => api.queue(), refetchInterval: 10_000 });
  const rows = Object.entries(q.data?.queues ?? {});
  return (
    <section className="card">
      <h3>Queues</h3>
      <ErrorText error={q.error} />
      <table className="table" data-testid="queues">
        <thead><tr><th>class</th><th>ready</th><th title="ready, but bigger than every live runner of the class">parked</th><th>dispatched</th><th>running/read</th><th>oldest ready</th><th>slots</th><th>runners</th></tr></thead>
        <tbody>
          {rows.length === 0 && <tr><td colSpan={8} className="muted">no resource class has held a task yet</td></tr>}
          {rows.map(([c, info]) => (
            <Fragment key={c}>
              <tr className={info.unfit.length ? 'has-unfit' : ''}>
                <td><strong>{c}</strong></td><td>{info.ready}</td>
                <td className={info.parked ? 'error' : 'muted'} data-testid={`parked-${c}`}>{info.parked ?? 0}</td>
                <td>{info.dispatched}</td><td>{info.pending}</td>
                <td>{info.oldest_ready_age_s != null ? formatDuration(info.oldest_ready_age_s) : '—'}</td>
                <td>{info.slots}</td><td>{info.runners.length}</td>
              </tr>
              {info.unfit.length > 0 && <tr className="unfit-row"><td colSpan={8}><UnfitWarnings rclass={c} entries={info.unfit} /></td></tr>}
            </Fragment>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Runners({ admin }: { admin: boolean }) {
  const api = useApi();
  const now = useNow();
  const q = useQuery({ queryKey: queryKeys.runners(), queryFn: () => api.runners(), refetchInterval: 10_000 });
  const order = useMutation({ mutationFn: ({ runner, drain }: { runner: string; drain: boolean }) => api.drainRunner(runner, drain) });
  const fetchedAt = q.dataUpdatedAt || now;
  return (
    <section className="card">
      <h3>Runners</h3>
      <ErrorText error={q.error ?? order.error} />
      <table className="table" data-testid="runners">
        <thead><tr><th>runner</th><th>host</th><th>classes</th><th>slots used / free</th><th>offers</th><th>heartbeat</th><th>state</th><th>up</th>{admin && <th />}</tr></thead>
        <tbody>
          {(q.data?.runners ?? []).length === 0 && <tr><td colSpan={9} className="muted">no live runner</td></tr>}
          {(q.data?.runners ?? []).map((r) => {
            const ttlLeft = r.heartbeat_ttl_ms - (now - fetchedAt);
            return (
              <tr key={r.id}>
                <td><strong>{r.id}</strong></td><td>{r.host}</td><td>{r.classes.join(', ')}</td>
                <td><div className="slots">{Array.from({ length: Math.min(r.slots, 32) }, (_, i) => <span key={i} className={i < r.busy ? 'used' : 'free'} />)}</div>{r.busy} / {Math.max(0, r.slots - r.busy)}</td>
                <td data-testid={`offer-${r.id}`}><RunnerOffer runner={r} /></td>
                <td className={r.alive && ttlLeft > 0 ? '' : 'error'}>{r.alive ? `expires in ${formatDuration(Math.max(0, ttlLeft) / 1000)}` : 'dead'}</td>
                <td><StateBadge state={r.state === 'active' ? 'running' : r.state} /> {r.state}</td>
                <td>{r.started_at ? formatRelative(r.started_at, now).replace(' ago', '') : '—'}</td>
                {admin && <td className="actions">
                  <button className="mini" disabled={r.state === 'draining'} onClick={() => order.mutate({ runner: r.id, drain: true })}>drain</button>
                  <button className="mini danger" onClick={() => { if (confirm(`Shut down ${r.id} now?`)) order.mutate({ runner: r.id, drain: false }); }}>shutdown</button>
                </td>}
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

function RunRow({ r, now, withEta }: { r: RunView; now: number; withEta: boolean }) {
  const total = r.total ?? Object.values(r.counts).reduce((a, b) => a + b, 0);
  return (
    <tr data-testid={`run-${r.id}`}>
      <td><Link to={`/runs/${r.id}`}>{r.id}</Link></td>
      <td>{r.name}</td>
      <td><StateBadge state={r.state} /> <span className="muted">{r.phase}</span></td>
      <td className="wide"><ProgressBar counts={r.counts} total={total} /><span className="muted">{progress(r.counts, total)}% of {total}</span></td>
      <td>{formatClock(r.created_at, now)}</td>
      <td>{withEta ? <RunEta run={r.id} /> : r.finished_at ? formatRelative(r.finished_at, now) : ''}</td>
    </tr>
  );
}

export function DashboardPage() {
  const api = useApi();
  const now = useNow(5000);
  const me = useQuery({ queryKey: queryKeys.me(), queryFn: () => api.me(), staleTime: Infinity });
  const runs = useQuery({ queryKey: queryKeys.runs(), queryFn: () => api.listRuns(100) });
  const all = runs.data?.runs ?? [];
  const active = all.filter((r) => !FINAL.has(r.state));
  const done = all.filter((r) => FINAL.has(r.state)).slice(0, 15);
  return (
    <div className="page dashboard">
      <Queues />
      <Runners admin={!!me.data?.admin} />
      <section className="card">
        <h3>Active runs ({active.length})</h3>
        <ErrorText error={runs.error} />
        <table className="table" data-testid="active-runs">
          <thead><tr><th>run</th><th>workflow</th><th>state</th><th>progress</th><th>created</th><th>ETA</th></tr></thead>
          <tbody>
            {active.length === 0 && <tr><td colSpan={6} className="muted">nothing running</td></tr>}
            {active.slice(0, 20).map((r) => <RunRow key={r.id} r={r} now={now} withEta />)}
          </tbody>
        </table>
      </section>
      <section className="card">
        <h3>Recent runs</h3>
        <table className="table" data-testid="recent-runs">
          <thead><tr><th>run</th><th>workflow</th><th>state</th><th>progress</th><th>created</th><th>finished</th></tr></thead>
          <tbody>{done.map((r) => <RunRow key={r.id} r={r} now={now} withEta={false} />)}</tbody>
        </table>
      </section>
    </div>
  );
}
