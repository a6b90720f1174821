// A run: its DAG with live state colours, the timeline with projected bars, the task panel,
// messages and provenance; cancel the run, redo from a node.

import { useMutation, useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import type { TaskView } from '../api/types';
import { CountsLine, ErrorText, ProgressBar, StateBadge, useNow } from '../components/bits';
import { DagView, type ViewEdge, type ViewNode } from '../components/DagView';
import { Gantt } from '../components/Gantt';
import { GroupPanel, TaskPanel } from '../components/TaskPanel';
import { unfitText, waitingFor } from '../format/resources';
import { formatClock, formatEta, progress } from '../format/time';
import { runGraph } from '../graph/model';
import { useParkedWatch } from '../live/useParkedWatch';
import { timeline } from '../graph/timeline';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
type Tab = 'graph' | 'timeline' | 'messages' | 'provenance';

function Provenance({ run }: { run: string }) {
  const api = useApi();
  const q = useQuery({ queryKey: queryKeys.provenance(run), queryFn: () => api.provenance(run) });
  if (q.error) return <ErrorText error={q.error} />;
  if (!q.data) return <p className="muted">loading…</p>;
  const tasks = (q.data.tasks ?? {}) as Record<string, { result_sha256?: string; outputs?: Record<string, unknown> }>;
  return (
    <div>
      <p>revision <code>{String(q.data.revision)}</code></p>
      <table className="table small">
        <thead><tr><th>task</th><th>result sha256</th><th>artifacts</th></tr></thead>
        <tbody>{Object.entries(tasks).slice(0, 500).map(([id, t]) => (
          <tr key={id}><td>{id}</td><td><code>{t.result_sha256 ? String(t.result_sha256).slice(0, 16) : ''}</code></td>
            <td>{Object.entries(t.outputs ?? {}).map(([name, v]) => <div key={name}><code>{name}</code> {typeof v === 'object' && v ? String((v as { sha256?: string }).sha256 ?? '').slice(0, 16) : String(v).slice(0, 16)}</div>)}</td></tr>
        ))}</tbody>
      </table>
    </div>
  );
}

export function RunPage() {
  const { id = '' } = useParams();
  const api = useApi();
  const now = useNow();
  const [tab, setTab] = useState<Tab>('graph');
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const run = useQuery({ queryKey: queryKeys.run(id), queryFn: () => api.run(id) });
  const state = run.data?.run.state ?? '';
  const active = !!run.data && !FINAL.has(state);
  const eta = useQuery({ queryKey: queryKeys.eta(id), queryFn: () => api.eta(id), enabled: active });
  const cancel = useMutation({ mutationFn: () => api.cancelRun(id) });
  const tasks = run.data?.tasks;
  useParkedWatch(id, tasks, active);
  const graph = useMemo(() => runGraph(tasks ?? [], expanded), [tasks, expanded]);
  const byId = useMemo(() => new Map((tasks ?? []).map((t) => [t.id, t])), [tasks]);
  const etaById = useMemo(() => new Map((eta.data?.tasks ?? []).map((e) => [e.id, e])), [eta.data]);
  const toggle = (key: string) => setExpanded((s) => {
    const next = new Set(s);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    return next;
  });
  const viewNodes = useMemo<ViewNode[]>(() => graph.nodes.map((n) => {
    if (n.kind === 'group') {
      const waiting = n.waiting ? unfitText({ tasks: n.waiting, reason: n.waitingFor ?? '' }) : undefined;
      return { id: n.id, kind: 'group', data: { title: n.label, state: n.state, counts: n.counts, size: n.size, waiting, waitingCount: n.waiting, selected: selected === n.id, expandable: true, expanded: false, onToggle: () => toggle(n.key!) } };
    }
    const t = byId.get(n.task!)!;
    const e = etaById.get(t.id);
    const sub = t.state === 'running' ? `running on ${t.runner || '?'}` : e?.expected_finish && !FINAL.has(t.state) && t.state !== 'succeeded' ? `ETA ${formatClock(e.expected_finish, now)}` : t.state;
    return { id: n.id, kind: 'task', data: { title: n.label, subtitle: sub, state: t.state, waiting: waitingFor(t) ?? undefined, selected: selected === n.id } };
  }), [graph, byId, etaById, selected, Math.floor(now / 10000)]);
  const viewEdges = useMemo<ViewEdge[]>(() => graph.edges.map((e) => ({ ...e, animated: false })), [graph]);
  const tl = useMemo(() => timeline(graph, tasks ?? [], eta.data?.tasks, now), [graph, tasks, eta.data, now]);

  if (run.error) return <div className="page"><ErrorText error={run.error} /><Link to="/">back</Link></div>;
  if (!run.data) return <div className="page"><p className="muted">loading run…</p></div>;
  const r = run.data.run;
  const total = r.total ?? tasks?.length ?? 0;
  const selNode = graph.nodes.find((n) => n.id === selected);
  const selTask: TaskView | undefined = selNode?.kind === 'task' ? byId.get(selNode.task!) : undefined;
  const selGroup = selNode?.kind === 'group' ? (tasks ?? []).filter((t) => graph.shownAs.get(t.id) === selNode.id) : undefined;
  const pick = (taskId: string) => {
    const shown = graph.shownAs.get(taskId);
    if (shown && shown.startsWith('t:')) setSelected(shown);
    else {
      const key = selNode?.key;
      if (key) toggle(key);
      setSelected(`t:${taskId}`);
    }
  };
  return (
    <div className="page run-page">
      <div className="run-head">
        <div>
          <h2><Link to={`/workflows/${encodeURIComponent(r.name)}`}>{r.name}</Link> <span className="muted">run {r.id}</span> <StateBadge state={r.state} /> <span className="muted" data-testid="run-phase">{r.phase}</span></h2>
          <div className="muted">revision <Link to={`/workflows/${encodeURIComponent(r.name)}/history`}><code>{r.revision.slice(0, 12)}</code></Link> · created {formatClock(r.created_at, now)}
            {r.finished_at ? ` · finished ${formatClock(r.finished_at, now)}` : ''}
            {r.redo_of && <> · redo of <Link to={`/runs/${r.redo_of}`}>{r.redo_of}</Link></>}
            {r.reason && <span className="error"> · {r.reason}</span>}
          </div>
        </div>
        <div className="run-progress">
          <ProgressBar counts={r.counts} total={total} />
          <div className="row"><span>{progress(r.counts, total)}% of {total}</span><CountsLine counts={r.counts} /></div>
          {active && <div data-testid="run-eta">ETA {formatEta(eta.data?.eta, now)}</div>}
        </div>
        <div>
          {active && <button className="danger" disabled={cancel.isPending} onClick={() => { if (confirm(`Cancel run ${r.id}?`)) cancel.mutate(); }}>Cancel run</button>}
          <ErrorText error={cancel.error} />
        </div>
      </div>
      {expanded.size > 0 && <div className="row">expanded: {[...expanded].map((k) => <button key={k} className="chip" onClick={() => toggle(k)}>{k} ✕</button>)}</div>}
      <div className="tabs">
        {(['graph', 'timeline', 'messages', 'provenance'] as Tab[]).map((t) => <button key={t} className={tab === t ? 'on' : ''} onClick={() => setTab(t)}>{t}{t === 'messages' && run.data!.messages.length ? ` (${run.data!.messages.length})` : ''}</button>)}
      </div>
      <div className="run-body">
        <div className="run-main">
          {tab === 'graph' && <DagView scope={`run:${r.revision}`} nodes={viewNodes} edges={viewEdges} onNodeClick={setSelected} onPaneClick={() => setSelected(null)} />}
          {tab === 'timeline' && <Gantt data={tl} now={now} onSelect={setSelected} />}
          {tab === 'messages' && (
            <ul className="messages">{run.data.messages.length ? run.data.messages.map((m, i) => <li key={i}><span className="muted">{formatClock(m.ts, now)}</span> {m.task && <code>{m.task}</code>} {m.text ?? JSON.stringify(m)}</li>) : <li className="muted">no messages</li>}</ul>
          )}
          {tab === 'provenance' && (FINAL.has(r.state) ? <Provenance run={r.id} /> : <p className="muted">provenance is written when the run ends</p>)}
        </div>
        {selTask && <TaskPanel run={r.id} runState={r.state} task={selTask} eta={etaById.get(selTask.id)} now={now} />}
        {selGroup && selNode && <GroupPanel label={selNode.label} tasks={selGroup} onPick={pick} onToggle={() => toggle(selNode.key!)} expanded={expanded.has(selNode.key!)} />}
      </div>
    </div>
  );
}
