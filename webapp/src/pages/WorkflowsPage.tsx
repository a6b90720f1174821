import { useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import { ErrorText, useNow } from '../components/bits';
import { formatRelative } from '../format/time';

/** Open a Nodeworks chart: it is published (converted) and opens in the editor. */
function ImportChart() {
  const api = useApi();
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const publish = useMutation({
    mutationFn: async () => api.publishChart(name, await file!.text(), `import ${file!.name}`),
    onSuccess: (out) => navigate(`/workflows/${encodeURIComponent(out.name)}`),
  });
  return (
    <section className="card">
      <h3>Open a Nodeworks chart</h3>
      <div className="row">
        <input type="file" name="chart" accept=".nc,.json" onChange={(e) => setFile(e.target.files?.[0] ?? null)} style={{ width: 'auto' }} />
        <label className="inline">as workflow <input name="chart-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="name" /></label>
        <button disabled={!file || !name || publish.isPending} onClick={() => publish.mutate()}>Open in the editor</button>
      </div>
      <ErrorText error={publish.error} />
    </section>
  );
}

export function WorkflowsPage() {
  const api = useApi();
  const now = useNow(10_000);
  const q = useQuery({ queryKey: queryKeys.workflows(), queryFn: () => api.workflows() });
  return (
    <div className="page">
      <div className="row"><h2>Workflows</h2><span className="spacer" /><Link className="button" to="/workflows/new">New workflow</Link></div>
      <ErrorText error={q.error} />
      <table className="table" data-testid="workflows">
        <thead><tr><th>name</th><th>latest revision</th><th>updated</th><th /></tr></thead>
        <tbody>
          {(q.data?.items ?? []).length === 0 && <tr><td colSpan={4} className="muted">no workflow published yet</td></tr>}
          {(q.data?.items ?? []).map((w) => (
            <tr key={w.name}>
              <td><Link to={`/workflows/${encodeURIComponent(w.name)}`}><strong>{w.name}</strong></Link></td>
              <td><code>{w.revision.slice(0, 12)}</code></td>
              <td>{formatRelative(w.updated_at, now)}</td>
              <td className="actions"><Link to={`/workflows/${encodeURIComponent(w.name)}`}>edit</Link> <Link to={`/workflows/${encodeURIComponent(w.name)}/history`}>history</Link></td>
            </tr>
          ))}
        </tbody>
      </table>
      <ImportChart />
    </div>
  );
}
