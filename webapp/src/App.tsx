// Layout and routes only.

import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link, NavLink, Navigate, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
import { useApi } from './api/ApiContext';
import { queryKeys } from './api/queryKeys';
import { LiveContext } from './live/LiveContext';
import { useLiveChannel } from './live/useLiveChannel';
import { DashboardPage } from './pages/DashboardPage';
import { EditorPage } from './pages/EditorPage';
import { HistoryPage } from './pages/HistoryPage';
import { LoginPage } from './pages/LoginPage';
import { RunPage } from './pages/RunPage';
import { WorkflowsPage } from './pages/WorkflowsPage';

function Shell({ children }: { children: React.ReactNode }) {
  const api = useApi();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const live = useLiveChannel(api, qc, true);
  const me = useQuery({ queryKey: queryKeys.me(), queryFn: () => api.me(), staleTime: Infinity });
  const logout = () => {
    api.setToken(null);
    qc.clear();
    navigate('/login');
  };
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/" className="brand">dagbroker</Link>
        <nav>
          <NavLink to="/" end>Dashboard</NavLink>
          <NavLink to="/workflows">Workflows</NavLink>
        </nav>
        <span className="spacer" />
        <span className={`live live-${live.status}`} data-testid="live-status" title="live channel">{live.status}</span>
        {me.data && <span className="who">{me.data.id}{me.data.admin ? ' (admin)' : ''}</span>}
        <button className="link" onClick={logout}>Log out</button>
      </header>
      <main><LiveContext.Provider value={live}>{children}</LiveContext.Provider></main>
    </div>
  );
}

function RequireToken({ children }: { children: React.ReactNode }) {
  const api = useApi();
  const location = useLocation();
  const [, bump] = useState(0);
  useEffect(() => {
    const onUnauthorized = () => bump((n) => n + 1);
    window.addEventListener('dagb:unauthorized', onUnauthorized);
    return () => window.removeEventListener('dagb:unauthorized', onUnauthorized);
  }, []);
  if (!api.token) return <Navigate to={`/login?next=${encodeURIComponent(location.pathname)}`} replace />;
  return <Shell>{children}</Shell>;
}

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route path="/" element={<RequireToken><DashboardPage /></RequireToken>} />
      <Route path="/runs/:id" element={<RequireToken><RunPage /></RequireToken>} />
      <Route path="/workflows" element={<RequireToken><WorkflowsPage /></RequireToken>} />
      <Route path="/workflows/new" element={<RequireToken><EditorPage /></RequireToken>} />
      <Route path="/workflows/:name" element={<RequireToken><EditorPage /></RequireToken>} />
      <Route path="/workflows/:name/history" element={<RequireToken><HistoryPage /></RequireToken>} />
      <Route path="*" element={<RequireToken><p className="empty">No such page. <Link to="/">Dashboard</Link></p></RequireToken>} />
    </Routes>
  );
}
