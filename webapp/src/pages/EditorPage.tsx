// The workflow editor: the graph (add/remove nodes, connect/disconnect), a form per node built
// from the spec's JSON Schema, validation errors from the API on the nodes, save = publish a new
// revision with a message on top of the base revision; a stale base shows the conflict.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { Connection, Edge, Node } from '@xyflow/react';
import { useEffect, useMemo, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { ApiError } from '../api/Api';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import type { ServerDiff, WorkflowDoc, WorkflowNode } from '../api/types';
import { ErrorText } from '../components/bits';
import { DagView, type ViewEdge, type ViewNode } from '../components/DagView';
import { SchemaForm } from '../components/SchemaForm';
import { firstError, nodeErrors, type NodeErrors } from '../format/errors';
import { formFields } from '../format/schema';
import { addNode, connect, disconnect, removeNode, renameNode, uniqueId, updateNode, workflowEdges } from '../graph/workflow';

const BLANK: WorkflowDoc = { name: '', nodes: { start: { executor: 'shell', command: 'echo hello' } } };
const NO_ERRORS: NodeErrors = { nodes: {}, workflow: [] };

interface Conflict {
  base: string;
  current: string | null;
  diff: ServerDiff | null;
}

function summary(node: WorkflowNode): string {
  const cmd = Array.isArray(node.command) ? node.command.join(' ') : node.command ?? (node.callable as string | undefined) ?? (node.script as string | undefined) ?? '';
  const m = node.matrix ? ` ×${Object.values(node.matrix).reduce((n, v) => n * (Array.isArray(v) ? v.length : 1), 1)}` : '';
  return `${node.executor ?? 'shell'}${m}: ${String(cmd).slice(0, 40)}`;
}

export function EditorPage() {
  const { name } = useParams();
  const api = useApi();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const isNew = !name;
  const latest = useQuery({ queryKey: queryKeys.workflow(name ?? ''), queryFn: () => api.workflow(name!), enabled: !isNew });
  const schema = useQuery({ queryKey: queryKeys.schema(), queryFn: () => api.schema(), staleTime: Infinity });
  const [doc, setDoc] = useState<WorkflowDoc>(BLANK);
  const [base, setBase] = useState<string | undefined>(undefined);
  const [dirty, setDirty] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [errors, setErrors] = useState<NodeErrors>(NO_ERRORS);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [message, setMessage] = useState('');
  const [notice, setNotice] = useState('');
  const [positions, setPositions] = useState<Record<string, { x: number; y: number }>>({});
  const [renaming, setRenaming] = useState('');

  useEffect(() => {
    if (latest.data && !dirty && latest.data.revision !== base) {
      setDoc(latest.data.workflow);
      setBase(latest.data.revision);
    }
  }, [latest.data, dirty, base]);
  useEffect(() => setRenaming(selected ?? ''), [selected]);

  const edit = (next: WorkflowDoc) => {
    setDoc(next);
    setDirty(true);
    setNotice('');
  };
  const tryEdit = (fn: () => WorkflowDoc) => {
    try {
      edit(fn());
    } catch (e) {
      setNotice((e as Error).message);
    }
  };

  const save = useMutation({
    mutationFn: (onto?: string) => api.publish(doc, message, onto ?? base),
    onSuccess: (out) => {
      // the cache holds what was saved: the effect below never reverts to an older revision
      qc.setQueryData(queryKeys.workflow(out.name), { name: out.name, owner: out.owner, revision: out.revision, workflow: doc });
      setBase(out.revision);
      setDirty(false);
      setErrors(NO_ERRORS);
      setConflict(null);
      setMessage('');
      setNotice(out.changed ? `saved revision ${out.revision.slice(0, 12)}` : 'no change: nothing to save');
      void qc.invalidateQueries({ queryKey: ['workflow', out.name] });
      void qc.invalidateQueries({ queryKey: queryKeys.history(out.name) });
      void qc.invalidateQueries({ queryKey: queryKeys.workflows() });
      if (isNew) navigate(`/workflows/${encodeURIComponent(out.name)}`, { replace: true });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.status === 409 && 'current' in e.details) {
        setConflict({ base: String(e.details.base ?? base), current: (e.details.current as string) ?? null, diff: (e.details.diff as ServerDiff) ?? null });
      } else if (e instanceof ApiError && (e.status === 422 || e.status === 400)) {
        setErrors(nodeErrors(e.message, e.details));
      }
    },
  });
  const run = useMutation({
    mutationFn: () => api.execute(doc.name, base),
    onSuccess: (out) => navigate(`/runs/${out.run}`),
  });

  const exportChart = async () => {
    try {
      const text = await api.exportChart(doc.name, base);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
      a.download = `${doc.name}.nc`;
      a.click();
      URL.revokeObjectURL(a.href);
    } catch (e) {
      setNotice(`export failed: ${(e as Error).message}`);
    }
  };

  const reload = async () => {
    const fresh = await qc.fetchQuery({ queryKey: queryKeys.workflow(doc.name), queryFn: () => api.workflow(doc.name), staleTime: 0 });
    setDoc(fresh.workflow);
    setBase(fresh.revision);
    setDirty(false);
    setConflict(null);
    setErrors(NO_ERRORS);
    setNotice(`reloaded revision ${fresh.revision.slice(0, 12)}`);
  };

  const nodeFields = useMemo(() => (schema.data ? formFields(schema.data, { $ref: '#/$defs/Node' }, ['after']) : []), [schema.data]);
  const wfFields = useMemo(() => (schema.data ? formFields(schema.data, { $ref: '#/$defs/Workflow' }, ['nodes', 'name']) : []), [schema.data]);
  const viewNodes = useMemo<ViewNode[]>(() => Object.entries(doc.nodes).map(([id, node]) => ({
    id, kind: 'task', data: { title: id, subtitle: summary(node), error: firstError(errors, id), selected: selected === id },
  })), [doc, errors, selected]);
  const viewEdges = useMemo<ViewEdge[]>(() => workflowEdges(doc), [doc]);
  const node = selected ? doc.nodes[selected] : undefined;

  const onConnect = (c: Connection) => tryEdit(() => connect(doc, c.source, c.target));
  const onEdgesDelete = (es: Edge[]) => tryEdit(() => es.reduce((d, e) => disconnect(d, e.source, e.target), doc));
  const onNodesDelete = (ns: Node[]) => {
    tryEdit(() => ns.reduce((d, n) => removeNode(d, n.id), doc));
    setSelected(null);
  };
  const add = () => {
    const id = uniqueId(doc, 'task');
    tryEdit(() => addNode(doc, id));
    setSelected(id);
  };
  const toggleAfter = (parent: string, on: boolean) => tryEdit(() => (on ? connect(doc, parent, selected!) : disconnect(doc, parent, selected!)));
  const rename = () => {
    if (!selected || renaming === selected) return;
    try {
      edit(renameNode(doc, selected, renaming));
      setSelected(renaming);
    } catch (e) {
      setNotice((e as Error).message);
      setRenaming(selected);
    }
  };

  if (latest.error) return <div className="page"><ErrorText error={latest.error} /></div>;
  return (
    <div className="page editor">
      <div className="row toolbar">
        {isNew ? (
          <label className="inline">name <input name="wf-name" value={doc.name} onChange={(e) => edit({ ...doc, name: e.target.value })} placeholder="my-workflow" /></label>
        ) : (
          <h2>{doc.name}</h2>
        )}
        {base && <span className="muted">base <code data-testid="base-revision">{base.slice(0, 12)}</code>{dirty ? ' · edited' : ''}</span>}
        <span className="spacer" />
        <button onClick={add}>Add node</button>
        <button disabled={!selected} onClick={() => { tryEdit(() => removeNode(doc, selected!)); setSelected(null); }}>Delete node</button>
        {!isNew && <Link className="button" to={`/workflows/${encodeURIComponent(doc.name)}/history`}>History</Link>}
        {!isNew && <button disabled={dirty} title="the saved revision as a Nodeworks chart" onClick={() => void exportChart()}>Nodeworks chart</button>}
        {!isNew && <button disabled={dirty || run.isPending} title={dirty ? 'save first' : 'run this revision'} onClick={() => run.mutate()}>Run</button>}
      </div>
      {conflict && (
        <div className="conflict" role="alert" data-testid="conflict">
          <strong>This workflow changed since you opened it.</strong> Your edit is based on <code>{conflict.base.slice(0, 12)}</code>; the latest revision is <code>{conflict.current?.slice(0, 12) ?? '—'}</code>.
          {conflict.diff && <div>Since then: {(['added', 'removed'] as const).map((k) => conflict.diff![k].length ? <span key={k} className={`chip change-${k}`}>{k} {conflict.diff![k].join(', ')}</span> : null)}
            {Object.keys(conflict.diff.changed ?? {}).length > 0 && <span className="chip change-changed">changed {Object.keys(conflict.diff.changed).join(', ')}</span>}</div>}
          <div className="row">
            <button onClick={() => void reload()}>Reload latest (drop my edits)</button>
            <button className="danger" onClick={() => conflict.current && save.mutate(conflict.current)}>Save mine over it</button>
          </div>
        </div>
      )}
      {errors.workflow.length > 0 && <div className="error" role="alert">{errors.workflow.map((m) => <div key={m}>{m}</div>)}</div>}
      {Object.keys(errors.nodes).length > 0 && <div className="error" role="alert" data-testid="node-errors">invalid: {Object.keys(errors.nodes).map((n) => `${n} (${firstError(errors, n)})`).join('; ')}</div>}
      {notice && <div className="notice" data-testid="notice">{notice}</div>}
      <div className="editor-body">
        <div className="run-main">
          <DagView scope={`wf:${doc.name}`} nodes={viewNodes} edges={viewEdges} editable onNodeClick={setSelected} onPaneClick={() => setSelected(null)}
            onConnect={onConnect} onEdgesDelete={onEdgesDelete} onNodesDelete={onNodesDelete} positions={positions}
            onNodeDragStop={(id, pos) => setPositions((p) => ({ ...p, [id]: pos }))} />
        </div>
        <aside className="panel form-panel" data-testid="node-form">
          {node && selected ? (
            <>
              <h3>Node</h3>
              <label className="field"><span>id</span><input name="node-id" value={renaming} onChange={(e) => setRenaming(e.target.value)} onBlur={rename} onKeyDown={(e) => { if (e.key === 'Enter') rename(); }} /></label>
              {errors.nodes[selected]?._ && <div className="error">{errors.nodes[selected]._}</div>}
              <div className="field"><span>after (depends on)</span>
                <div className="checks">{Object.keys(doc.nodes).filter((n) => n !== selected).map((n) => (
                  <label key={n} className="inline"><input type="checkbox" name={`after-${n}`} checked={!!node.after?.includes(n)} onChange={(e) => toggleAfter(n, e.target.checked)} /> {n}</label>
                ))}</div>
                {errors.nodes[selected]?.after && <div className="error">{errors.nodes[selected].after}</div>}
              </div>
              <SchemaForm key={selected} fields={nodeFields} value={node as Record<string, unknown>} errors={errors.nodes[selected]} onChange={(v) => edit(updateNode(doc, selected, v as WorkflowNode))} />
            </>
          ) : (
            <>
              <h3>Workflow</h3>
              <p className="muted">Select a node to edit it; drag from a node's bottom handle to another node to connect them; select an edge or node and press Delete to remove it.</p>
              <SchemaForm fields={wfFields} value={doc as Record<string, unknown>} onChange={(v) => edit({ ...(v as WorkflowDoc), name: doc.name, nodes: doc.nodes })} />
            </>
          )}
          <div className="savebar">
            <input name="message" placeholder="what changed (commit message)" value={message} onChange={(e) => setMessage(e.target.value)} />
            <button className="primary" disabled={save.isPending || !doc.name} onClick={() => save.mutate(undefined)}>Save</button>
          </div>
          {save.error && !(save.error instanceof ApiError && [409, 422, 400].includes(save.error.status)) && <ErrorText error={save.error} />}
          {save.error instanceof ApiError && save.error.status === 400 && <ErrorText error={save.error} />}
          <ErrorText error={run.error} />
        </aside>
      </div>
    </div>
  );
}
