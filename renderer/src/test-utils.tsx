/**
 * Shared setup for the renderer's component tests (jsdom): jest-dom matchers, cleanup after each test,
 * and a QueryClient wrapper for components that use TanStack Query.
 */
import '@testing-library/jest-dom/vitest';
import { cleanup, render, type RenderOptions } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { afterEach } from 'vitest';
import type { ReactElement } from 'react';

afterEach(() => cleanup());

/** A QueryClient as the app configures it, without retries (a failed call fails the test at once). */
export function testQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { staleTime: Infinity, refetchOnWindowFocus: false, retry: false },
      mutations: { retry: false },
    },
  });
}

/** Renders `ui` inside a QueryClientProvider. */
export function renderWithQuery(ui: ReactElement, options?: RenderOptions) {
  const client = testQueryClient();
  return { client, ...render(<QueryClientProvider client={client}>{ui}</QueryClientProvider>, options) };
}
