/**
 * The contract's handlers over the running services (main/headless/serve.ts `startService`): the same
 * object backs Electron IPC (register.ts) and the browser bridge (main/web/ui-server.ts).
 * Channels whose service does not exist yet answer `not-available` with what is missing: a clear error,
 * never a pretend success.
 */
import { LUKS_PASSPHRASE_GUID, secretAccount, type VmProfile } from '../../app/profile';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import type {
  AppInfo,
  ApprovalView,
  InvokeChannel,
  InvokeHandlers,
  ListenerStatus,
  ParsedArgs,
} from '../../app/contract/ipc';
import type { Approval } from '../services/approvals';
import type { RunningService } from '../headless/serve';
import type { UiEventBus } from './event-bus';
import { buildHostSetup } from '../../app/host-setup';
import { previewDigests } from '../services/digest-preview';
import { demoRunnerFor } from '../services/demo-host';
import { artifactImportsFor } from '../services/artifact-import';

/** A coded error for a channel that has no backing service yet. */
export class NotAvailableError extends Error {
  readonly code = 'not-available';
}

function notAvailable(channel: InvokeChannel, what: string): never {
  throw new NotAvailableError(`${channel} is not available yet: ${what}`);
}

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The contract's view of an approval. */
export function approvalView(a: Approval): ApprovalView {
  const view: ApprovalView = {
    id: a.id,
    state: a.state === 'used' ? 'approved' : a.state,
    vmId: a.vmId ?? null,
    connection: null,
    clientAddress: a.client,
    chipId: a.chipId ?? null,
    anchoredBy: a.anchor ?? null,
    policy: a.policy,
    createdAt: new Date(a.createdAt).toISOString(),
    expiresAt: new Date(a.expiresAt).toISOString(),
  };
  if (a.decidedAt !== undefined) view.decidedAt = new Date(a.decidedAt).toISOString();
  return view;
}

export interface HandlerContext {
  service: RunningService;
  mode: AppInfo['mode'];
  version: string;
  dataDir: string;
  hostToken?: string;
  firstRun: { get(): boolean; complete(): void };
  openExternal(url: string): Promise<void>;
}

/** Builds every contract handler. */
export function createInvokeHandlers(ctx: HandlerContext): InvokeHandlers {
  const { service } = ctx;
  const requireProfile = (id: string): VmProfile => {
    const p = service.profiles.get(id);
    if (!p) throw coded('unknown-vm', `no VM profile ${id}`);
    return p;
  };
  const listenerStatus = (): ListenerStatus => {
    const s: ListenerStatus = {
      state: 'running',
      host: service.host,
      port: service.port,
      url: service.url,
      tls: service.tlsFingerprint !== undefined,
      hostTokenRequired: ctx.hostToken !== undefined,
    };
    if (service.tlsFingerprint !== undefined) s.tlsFingerprint = service.tlsFingerprint;
    return s;
  };
  const eventsOf = (filter: ParsedArgs<'events:list'>[0]) => service.owner.events(filter);

  return {
    'profiles:list': async () => service.profiles.list(),
    'profiles:get': async (id) => service.profiles.get(id) ?? null,
    'profiles:save': async (profile) => ({ profile: service.profiles.put(profile), warnings: [] }),
    'profiles:duplicate': async (id, newId) => {
      const p = requireProfile(id);
      if (service.profiles.get(newId)) throw coded('vm-exists', `a VM profile ${newId} exists already`);
      // Secret values are per VM in the keychain: the copy starts without secrets.
      return service.profiles.put({ ...p, id: newId, name: `${p.name} (copy)`, secrets: [] });
    },
    'profiles:delete': async (id) => service.owner.deleteVm(id),

    'secrets:set': async (vmId, secret) => {
      const p = requireProfile(vmId);
      const guid = secret.kind === 'luks-passphrase' ? LUKS_PASSPHRASE_GUID : secret.guid;
      const bytes =
        secret.kind === 'luks-passphrase'
          ? new TextEncoder().encode(secret.passphrase)
          : fromBase64(secret.dataBase64);
      await service.secretStore.set(secretAccount(vmId, guid), bytes);
      const ref = { guid, kind: secret.kind, ...(secret.label ? { label: secret.label } : {}) };
      service.profiles.put({ ...p, secrets: [...p.secrets.filter((s) => s.guid !== guid), ref] });
      return { ref, warnings: [] };
    },
    'secrets:reveal': async (vmId, guid) => {
      const p = requireProfile(vmId);
      const ref = p.secrets.find((s) => s.guid === guid);
      if (!ref) throw coded('unknown-secret', `VM ${vmId} has no secret ${guid}`);
      const bytes = await service.secretStore.get(secretAccount(vmId, guid));
      if (!bytes) throw coded('secret-missing', `the keychain holds no value for ${vmId}/${guid}`);
      return {
        guid,
        kind: ref.kind,
        base64: toBase64(bytes),
        ...(ref.kind === 'luks-passphrase' ? { text: new TextDecoder().decode(bytes) } : {}),
      };
    },
    'secrets:delete': async (vmId, guid) => {
      const p = requireProfile(vmId);
      await service.secretStore.delete(secretAccount(vmId, guid));
      service.profiles.put({ ...p, secrets: p.secrets.filter((s) => s.guid !== guid) });
    },

    'artifacts:list': async () => artifactImportsFor(service).list(),
    'artifacts:import': async (request) => artifactImportsFor(service).import(request),
    'artifacts:cancelImport': async (importId) => artifactImportsFor(service).cancel(importId),
    'artifacts:inspect': async (sha256) => artifactImportsFor(service).inspect(sha256),
    'digests:preview': async (draft) => previewDigests(service.digests, draft),

    'approvals:list': async () => service.approvals.list().map(approvalView),
    'approvals:decide': async (id, decision) => {
      service.owner.decide(id, decision);
    },

    'events:list': async (filter) => eventsOf(filter),
    'events:export': async (filter) => ({
      fileName: `sev-attest-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
      json: JSON.stringify(eventsOf(filter), null, 2),
    }),

    'listener:status': async () => listenerStatus(),
    'listener:configure': async () =>
      notAvailable('listener:configure', 'restarting the listener with new settings is not wired yet'),
    'listener:tokens': async () => ({ ownerToken: service.ownerToken, hostToken: ctx.hostToken ?? null }),

    'tunnel:status': async () => ({ state: 'off' }),
    'tunnel:configure': async () =>
      notAvailable('tunnel:configure', 'the SSH tunnel service does not exist yet'),

    'hostSetup:get': async (vmId) =>
      buildHostSetup({
        profile: requireProfile(vmId),
        listenerUrl: service.url,
        ...(service.tlsFingerprint !== undefined ? { tlsFingerprint: service.tlsFingerprint } : {}),
        hostTokenRequired: ctx.hostToken !== undefined,
      }),
    'demo:run': async (options) => demoRunnerFor(service, ctx.hostToken).run(options),

    'app:info': async () => ({
      version: ctx.version,
      mode: ctx.mode,
      platform: process.platform,
      firstRunComplete: ctx.firstRun.get(),
      dataDir: ctx.dataDir,
      secretStore: { kind: service.secretStore.kind, note: service.secretStore.description },
    }),
    'app:completeFirstRun': async () => ctx.firstRun.complete(),
    'shell:openExternal': async (url) => ctx.openExternal(url),
  };
}

/** Forwards service changes to the UI event bus; returns the disconnect function. */
export function connectUiEvents(service: RunningService, bus: UiEventBus): () => void {
  const offApprovals = service.approvals.subscribe(() =>
    bus.emit('approvals:changed', service.approvals.list().map(approvalView)),
  );
  const offAudit = service.audit.subscribe((e) => bus.emit('events:appended', e));
  const offImports = artifactImportsFor(service).subscribe((p) => bus.emit('artifacts:progress', p));
  return () => {
    offApprovals();
    offAudit();
    offImports();
  };
}
