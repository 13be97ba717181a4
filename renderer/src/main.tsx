/** Renderer entry: the QueryClient, the contract implementation for this mode, and the app. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { api } from './api';
import { ApiProvider } from './queries/api-context';
import { queryDefaults } from './queries/hooks';
import { App } from './app';
import './styles.css';

const queryClient = new QueryClient({ defaultOptions: queryDefaults });

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ApiProvider api={api}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </ApiProvider>
  </StrictMode>,
);
