import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate, useSearchParams } from 'react-router-dom';
import { ApiError } from '../api/Api';
import { useApi } from '../api/ApiContext';

export function LoginPage() {
  const api = useApi();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    api.setToken(token.trim());
    try {
      await api.me();
      qc.clear();
      navigate(params.get('next') || '/', { replace: true });
    } catch (err) {
      api.setToken(null);
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login">
      <form onSubmit={submit} className="card">
        <h1>dagbroker</h1>
        <p className="muted">Sign in with an API token (<code>dagbroker tokens create</code>; the admin's is in <code>~/.dagbroker/admin.token</code>). It is kept for this tab only.</p>
        <label>Token
          <input name="token" type="password" autoFocus value={token} onChange={(e) => setToken(e.target.value)} placeholder="dgb_…" />
        </label>
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy || !token.trim()}>Sign in</button>
      </form>
    </div>
  );
}
