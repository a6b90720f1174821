import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import { ErrorText, useNow } from '../components/bits';
import { formatRelative } from '../format/time';

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
    </div>
  );
}
