/**
 * TanStack Query hooks for measurement bundles (the export and import dialogs, the trusted-keys panel),
 * and the browser download the export dialog saves with.
 */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { BundleSelection, TrustedBundleKey } from '../../../app/contract/ipc';
import { useApi } from './api-context';

export const bundleKeys = {
  signingKey: ['bundles', 'key'] as const,
  trusted: ['bundles', 'trusted'] as const,
  preview: (vmId: string, selection: BundleSelection | null) =>
    ['bundles', 'preview', vmId, selection] as const,
};

/** This machine's signing key (null before one is created). */
export function useSigningKey() {
  const api = useApi();
  return useQuery({ queryKey: bundleKeys.signingKey, queryFn: () => api.bundles.key() });
}

/** Creates the signing key (it is trusted at once, so the trusted list changes too). */
export function useKeygen() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (replace: boolean) => api.bundles.keygen({ replace }),
    onSuccess: (key) => {
      client.setQueryData(bundleKeys.signingKey, { fingerprint: key.fingerprint, publicKey: key.publicKey });
      void client.invalidateQueries({ queryKey: bundleKeys.trusted });
    },
  });
}

export function useTrustedKeys() {
  const api = useApi();
  return useQuery({ queryKey: bundleKeys.trusted, queryFn: () => api.bundles.trusted() });
}

/** Trusts a key (fingerprint or public key) with a label. */
export function useTrustKey() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ keyText, label }: { keyText: string; label?: string }) =>
      api.bundles.trust(keyText, label),
    onSuccess: (entry) =>
      client.setQueryData<TrustedBundleKey[]>(bundleKeys.trusted, (old) => [
        ...(old ?? []).filter((k) => k.fingerprint !== entry.fingerprint),
        entry,
      ]),
  });
}

export function useUntrustKey() {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (fingerprint: string) => api.bundles.untrust(fingerprint),
    onSuccess: (_removed, fingerprint) =>
      client.setQueryData<TrustedBundleKey[]>(bundleKeys.trusted, (old) =>
        (old ?? []).filter((k) => k.fingerprint !== fingerprint),
      ),
  });
}

/** The unsigned rows a selection gives (null selection: not asked yet, e.g. an unreadable vCPU range). */
export function useBundlePreview(vmId: string, selection: BundleSelection | null) {
  const api = useApi();
  return useQuery({
    queryKey: bundleKeys.preview(vmId, selection),
    queryFn: () => api.bundles.preview(vmId, selection!),
    enabled: selection !== null,
    placeholderData: keepPreviousData,
    retry: false,
  });
}

/** Saves text as a file through a temporary <a download> (works in Electron and in a browser). */
export function downloadText(fileName: string, contentType: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: contentType }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Parses a vCPU range as owners type it ("1-8", "1,2,4", "1-4,8"): sorted counts, or why it cannot. */
export function parseCpuRange(text: string): { counts: number[] } | { error: string } {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m && m[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi < lo || hi > 4096) {
      return { error: 'vCPUs: counts or ranges from 1 to 4096, like 1-8 or 1,2,4' };
    }
    for (let n = lo; n <= hi && out.size <= 512; n++) out.add(n);
  }
  if (out.size > 512) return { error: 'vCPUs: at most 512 counts' };
  return { counts: [...out].sort((a, b) => a - b) };
}

/** The shortest range text for a list of counts: [1,2,3,4,8] → "1-4,8". */
export function formatCpuRange(counts: readonly number[]): string {
  const sorted = [...new Set(counts)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : `${sorted[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}
