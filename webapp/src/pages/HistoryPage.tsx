// A workflow's revisions (author, time, message), a visual diff between two of them, and a run
// of any revision with parameter overrides.

import { useMutation, useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import { ErrorText, useNow } from '../components/bits';
import { DagView, type ViewEdge, type ViewNode } from '../components/DagView';
import { formatClock } from '../format/time';
import { diffSummary, diffWorkflows, mergedGraph } from '../graph/diff';

function shown(v: unknown): string {
  return v === undefined ? '(unset)' : JSON.stringify(v);
}

function RunRevision({ name, revision, params }: { name: string; revision: string; params: Record<string, unknown> }) {
  const api = useApi();
  const navigate = useNavigate();
  const [text, setText] = useState(JSON.stringify(params, null, 2));
  const [error, setError] = useState('');
  useEffect(() => setText(JSON.stringify(params, null, 2)), [params, revision]);
  const run = useMutation({
    mutationFn: (p: Record<string, unknown>) => api.execute(name, revision, p),
    onSuccess: (out) => navigate(`/runs/${out.run}`),
  });
  const go = () => {
    try {
      const p = text.trim() ? JSON.parse(text) : {};
      setError('');
      run.mutate(p);
    } catch (e) {
      setError(`invalid JSON: ${(e as Error).message}`);
    }
  };
  return (
    <section className="card">
      <h3>Run revision <code>{revision.slice(0, 12)}</code></h3>
      <label className="field"><span>parameters (JSON; defaults shown)</span><textarea name="params" rows={5} value={text} onChange={(e) => setText(e.target.value)} /></label>
      {error && <p className="error">{error}</p>}
      <button className="primary" disabled={run.isPending} onClick={go}>Run this revision</button>
      <ErrorText error={run.error} />
    </section>
  );
}

export function HistoryPage() {
  const { name = '' } = useParams();
  const api = useApi();
  const now = useNow(30_000);
  const hist = useQuery({ queryKey: queryKeys.history(name), queryFn: () => api.history(name) });
  const revs = useMemo(() => (hist.data?.revisions ?? []).filter((r) => !r.deleted), [hist.data]);
  const [to, setTo] = useState<string | null>(null);
  const [from, setFrom] = useState<string | null>(null);
  useEffect(() => {
    if (revs.length && !to) {
      setTo(revs[0].revision);
      setFrom(revs[1]?.revision ?? null);
    }
  }, [revs, to]);
  const toDoc = useQuery({ queryKey: queryKeys.workflow(name, to ?? ''), queryFn: () => api.workflow(name, to!), enabled: !!to, staleTime: Infinity });
  const fromDoc = useQuery({ queryKey: queryKeys.workflow(name, from ?? ''), queryFn: () => api.workflow(name, from!), enabled: !!from, staleTime: Infinity });
  const d = useMemo(() => diffWorkflows(fromDoc.data?.workflow ?? null, toDoc.data?.workflow ?? null), [fromDoc.data, toDoc.data]);
  const merged = useMemo(() => mergedGraph(fromDoc.data?.workflow ?? null, toDoc.data?.workflow ?? null, d), [fromDoc.data, toDoc.data, d]);
  const viewNodes = useMemo<ViewNode[]>(() => merged.nodes.map((n) => ({
    id: n.id, kind: 'task', data: { title: n.id, subtitle: n.change === 'same' ? '' : n.change, change: n.change },
  })), [merged]);
  const viewEdges = useMemo<ViewEdge[]>(() => merged.edges.map((e) => ({ id: e.id, source: e.source, target: e.target, className: `edge-${e.change}` })), [merged]);
  const sum = diffSummary(d);
  return (
    <div className="page history">
      <div className="row"><h2>{name} <span className="muted">history</span></h2><span className="spacer" /><Link className="button" to={`/workflows/${encodeURIComponent(name)}`}>Edit</Link></div>
      <ErrorText error={hist.error} />
      <div className="history-body">
        <section className="card revisions">
          <table className="table small" data-testid="revisions">
            <thead><tr><th>from</th><th>to</th><th>revision</th><th>author</th><th>time</th><th>message</th><th>changes</th></tr></thead>
            <tbody>{revs.map((r) => (
              <tr key={r.revision} className={r.revision === to ? 'sel' : ''}>
                <td><input type="radio" name="from" checked={from === r.revision} onChange={() => setFrom(r.revision)} /></td>
                <td><input type="radio" name="to" checked={to === r.revision} onChange={() => setTo(r.revision)} /></td>
                <td><code>{r.revision.slice(0, 12)}</code></td><td>{r.author}</td><td>{formatClock(r.committed_at, now)}</td>
                <td className="msg">{r.message}</td>
                <td>{r.added.length > 0 && <span className="chip change-added">+{r.added.length}</span>}{r.removed.length > 0 && <span className="chip change-removed">−{r.removed.length}</span>}{r.changed.length > 0 && <span className="chip change-changed">~{r.changed.length}</span>}</td>
              </tr>
            ))}</tbody>
          </table>
        </section>
        <section className="card diff">
          <h3>Diff {from ? <code>{from.slice(0, 12)}</code> : '(nothing)'} → {to && <code>{to.slice(0, 12)}</code>}</h3>
          <p data-testid="diff-summary">
            <span className="chip change-added">added {sum.added.join(', ') || '—'}</span>
            <span className="chip change-removed">removed {sum.removed.join(', ') || '—'}</span>
            <span className="chip change-changed">changed {sum.changed.join(', ') || '—'}</span>
            {d.workflow.length > 0 && <span className="chip">workflow fields: {d.workflow.join(', ')}</span>}
          </p>
          {toDoc.data && <DagView scope={`diff:${name}`} nodes={viewNodes} edges={viewEdges} />}
          {Object.entries(d.fields).map(([node, fields]) => (
            <div key={node} className="field-diff"><strong>{node}</strong>{fields.map((f) => (
              <div key={f}><code>{f}</code>: <del>{shown(fromDoc.data?.workflow.nodes[node]?.[f])}</del> → <ins>{shown(toDoc.data?.workflow.nodes[node]?.[f])}</ins></div>
            ))}</div>
          ))}
        </section>
      </div>
      {to && toDoc.data && <RunRevision name={name} revision={to} params={(toDoc.data.workflow.params ?? {}) as Record<string, unknown>} />}
    </div>
  );
}
