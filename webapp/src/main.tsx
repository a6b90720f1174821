// Providers: one Api, one QueryClient, the router. A 401 anywhere sends the user to the login.

import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router-dom';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { Api, ApiError } from './api/Api';
import { ApiContext } from './api/ApiContext';
import { App } from './App';

const api = new Api();

function onError(error: unknown): void {
  if (error instanceof ApiError && error.status === 401) {
    api.setToken(null);
    window.dispatchEvent(new Event('dagb:unauthorized'));
  }
}

const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: {
    queries: {
      staleTime: 30_000, // the live channel invalidates what changed
      refetchOnWindowFocus: false,
      retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
    },
  },
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ApiContext.Provider value={api}>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter>
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </ApiContext.Provider>
  </StrictMode>,
);
