/**
 * TanStack Query over the IPC contract: one useQuery per list, one subscription hook per push channel
 * that writes into the cache (main pushes the truth, so staleTime is Infinity and nothing refetches on
 * focus), and useMutation for actions.
 */
import { useEffect } from 'react';
import { useMutation, useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { auditEventMatches } from '../../../app/audit';
import type {
  ArtifactProgress,
  AuditEvent,
  AuditFilter,
  Decision,
  DigestDraft,
  HostSetupOptions,
} from '../../../app/contract/ipc';
import { useApi } from './api-context';

/** Query keys in one place so subscriptions and queries agree. */
export const keys = {
  appInfo: ['app', 'info'] as const,
  profiles: ['profiles'] as const,
  artifacts: ['artifacts'] as const,
  artifact: (sha256: string) => ['artifacts', 'inspect', sha256] as const,
  artifactProgress: (importId: string) => ['artifacts', 'progress', importId] as const,
  approvals: ['approvals'] as const,
  events: (filter?: AuditFilter) => ['events', filter ?? {}] as const,
  listener: ['listener', 'status'] as const,
  tokens: ['listener', 'tokens'] as const,
  tunnel: ['tunnel'] as const,
  hostSetup: (vmId: string, options?: HostSetupOptions) => ['hostSetup', vmId, options ?? {}] as const,
  digests: (draft: DigestDraft | null) => ['digests', draft] as const,
};

/** The app's QueryClient defaults (see the module comment). */
export const queryDefaults = {
  queries: { staleTime: Infinity, refetchOnWindowFocus: false, retry: 1 },
} as const;

export function useAppInfo() {
  const api = useApi();
  return useQuery({ queryKey: keys.appInfo, queryFn: () => api.app.info() });
}

export function useProfiles() {
  const api = useApi();
  return useQuery({ queryKey: keys.profiles, queryFn: () => api.profiles.list() });
}

export function useArtifacts() {
  const api = useApi();
  return useQuery({ queryKey: keys.artifacts, queryFn: () => api.artifacts.list() });
}

/** An artifact with its firmware capabilities (undefined sha256: disabled). */
export function useArtifactInspection(sha256: string | undefined) {
  const api = useApi();
  return useQuery({
    queryKey: keys.artifact(sha256 ?? ''),
    queryFn: () => api.artifacts.inspect(sha256!),
    enabled: sha256 !== undefined && sha256 !== '',
  });
}

export function useApprovals() {
  const api = useApi();
  return useQuery({ queryKey: keys.approvals, queryFn: () => api.approvals.list() });
}

export function useEvents(filter?: AuditFilter) {
  const api = useApi();
  // Newest first, as the screens say and as pushed events are added (the service lists oldest first).
  return useQuery({
    queryKey: keys.events(filter),
    queryFn: async () => (await api.events.list(filter)).sort((a, b) => b.seq - a.seq),
  });
}

export function useListenerStatus() {
  const api = useApi();
  return useQuery({ queryKey: keys.listener, queryFn: () => api.listener.status() });
}

export function useListenerTokens(enabled = true) {
  const api = useApi();
  return useQuery({ queryKey: keys.tokens, queryFn: () => api.listener.tokens(), enabled });
}

export function useTunnelStatus() {
  const api = useApi();
  return useQuery({ queryKey: keys.tunnel, queryFn: () => api.tunnel.status() });
}

export function useHostSetup(vmId: string | undefined, options?: HostSetupOptions) {
  const api = useApi();
  return useQuery({
    queryKey: keys.hostSetup(vmId ?? '', options),
    queryFn: () => api.hostSetup.get(vmId!, options),
    enabled: vmId !== undefined && vmId !== '',
    // Another row or ID option keeps the last fragment shown while the next is signed.
    placeholderData: (prev) => prev,
  });
}

/** Creates an SNP VM's ID key (and the owner's author key); every host setup and the profiles refetch. */
export function useSnpKeys() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ vmId, authorKey }: { vmId: string; authorKey?: boolean }) =>
      api.hostSetup.snpKeys(vmId, authorKey ? { authorKey } : {}),
    onSettled: async () => {
      await client.invalidateQueries({ queryKey: ['hostSetup'] });
      await client.invalidateQueries({ queryKey: keys.profiles });
    },
  });
}

/** The expected launch digests of a draft; the previous answer stays shown while the next computes. */
export function useDigestPreview(draft: DigestDraft | null) {
  const api = useApi();
  return useQuery({
    queryKey: keys.digests(draft),
    queryFn: () => api.digests.preview(draft!),
    enabled: draft !== null,
    placeholderData: (prev) => prev,
    retry: false,
  });
}

/** The progress of one import: never fetched, only written by the artifacts:progress subscription. */
export function useImportProgress(importId: string | undefined) {
  return useQuery<ArtifactProgress | null>({
    queryKey: keys.artifactProgress(importId ?? ''),
    queryFn: () => null,
    enabled: false,
  });
}

/** Approve or deny a launch request. */
export function useDecide() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, decision }: { id: string; decision: Decision }) => api.approvals.decide(id, decision),
    // Main pushes approvals:changed too; refetching covers a bridge that does not.
    onSettled: () => client.invalidateQueries({ queryKey: keys.approvals }),
  });
}

/** Forget a decision: identical launches ask the owner again. */
export function useForgetDecision() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.approvals.forget(id),
    onSettled: () => client.invalidateQueries({ queryKey: keys.approvals }),
  });
}

/** Adds a pushed audit event to every cached event list whose filter it matches, newest first. */
export function addEventToCache(client: QueryClient, event: AuditEvent): void {
  const lists = client.getQueriesData<AuditEvent[]>({ queryKey: ['events'] });
  for (const [key, list] of lists) {
    const filter = key[1] as AuditFilter | undefined;
    if (!list || !auditEventMatches(event, filter)) continue;
    if (list.some((e) => e.id === event.id)) continue;
    const next = [...list, event].sort((a, b) => b.seq - a.seq);
    client.setQueryData(key, filter?.limit ? next.slice(0, filter.limit) : next);
  }
}

/** Subscribes once to every push channel and writes what arrives into the cache. */
export function useLiveUpdates(): void {
  const api = useApi();
  const client = useQueryClient();
  useEffect(() => {
    const stops = [
      api.approvals.onChanged((snapshot) => client.setQueryData(keys.approvals, snapshot)),
      api.events.onAppended((event) => {
        addEventToCache(client, event);
        // A profile event means the profile list changed elsewhere (CLI, REST).
        if (event.type === 'profile') void client.invalidateQueries({ queryKey: keys.profiles });
      }),
      api.artifacts.onProgress((progress) => {
        client.setQueryData(keys.artifactProgress(progress.importId), progress);
        if (progress.phase === 'done')
          void client.invalidateQueries({ queryKey: keys.artifacts, exact: true });
      }),
      api.listener.onChanged((status) => client.setQueryData(keys.listener, status)),
      api.tunnel.onChanged((status) => client.setQueryData(keys.tunnel, status)),
    ];
    return () => stops.forEach((stop) => stop());
  }, [api, client]);
}
