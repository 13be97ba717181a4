// @vitest-environment jsdom
/** Browser mode notifies a new launch request (the desktop app does it from main). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderHook } from '@testing-library/react';
import { requestNotificationText, useRequestNotifications } from './notify';
import type { ApprovalView } from '../../../app/contract/ipc';

const a = (id: string): ApprovalView => ({
  id,
  kind: 'sev-launch',
  state: 'pending',
  vmId: 'web-01',
  profileName: 'Web',
  connection: null,
  clientAddress: '192.0.2.1',
  chipId: null,
  anchoredBy: 'milan',
  policy: 5,
  createdAt: '2026-01-01T00:00:00Z',
  expiresAt: '2026-01-01T00:05:00Z',
});

afterEach(() => vi.unstubAllGlobals());

describe('useRequestNotifications', () => {
  it('notifies each new pending request once when permitted, not those already there', () => {
    const shown: Array<{ title: string; body?: string }> = [];
    class FakeNotification {
      static permission = 'granted';
      onclick: (() => void) | null = null;
      constructor(title: string, opts?: { body?: string }) {
        shown.push({ title, body: opts?.body });
      }
    }
    vi.stubGlobal('Notification', FakeNotification);
    const { rerender } = renderHook(({ list }) => useRequestNotifications(list, true), {
      initialProps: { list: [a('old')] },
    });
    expect(shown).toEqual([]);
    rerender({ list: [a('old'), a('new')] });
    rerender({ list: [a('old'), a('new')] });
    expect(shown).toEqual([
      { title: 'SEV Attest: a launch is waiting for you', body: 'Web (web-01) from 192.0.2.1' },
    ]);
  });
});

describe('requestNotificationText for an SEV-SNP guest', () => {
  it('says an SNP guest is waiting, not a launch', () => {
    expect(requestNotificationText({ ...a('x'), kind: 'snp-attest' }).title).toBe(
      'SEV Attest: an SEV-SNP guest is waiting for you',
    );
    expect(requestNotificationText(a('y')).title).toBe('SEV Attest: a launch is waiting for you');
  });
});
