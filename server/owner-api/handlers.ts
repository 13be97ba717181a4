/**
 * The contract's handlers over the running services (server/serve/serve.ts `startService`): the same
 * object backs Electron IPC (register.ts) and the browser bridge (server/web/ui-server.ts).
 */
import { LUKS_PASSPHRASE_GUID, secretAccount, type VmProfile } from '../../app/profile';
import { fromBase64, toBase64, wipe } from '../../app/sev/bytes';
import type { AppInfo, ApprovalView, InvokeHandlers, ParsedArgs } from '../../app/contract/ipc';
import type { Approval } from '../services/approvals';
import type { RunningService } from '../serve/serve';
import type { UiEventBus } from './event-bus';
import { buildHostSetup } from '../../app/host-setup';
import { previewDigests } from '../services/digest-preview';
import { demoRunnerFor } from '../services/demo-host';
import { ensureDemoProfile } from '../services/demo-setup';
import { artifactImportsFor } from '../services/artifact-import';
import { bundleHandlers } from './bundle-handlers';

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** What an approval card shows besides the approval itself (the profile, until when a denial holds). */
export interface ApprovalViewContext {
  profile?(vmId: string): VmProfile | undefined;
  refusedUntil?(a: Approval): number | undefined;
}

/** The view of every approval the service holds, with its profile and denial state. */
export function approvalViews(service: RunningService): ApprovalView[] {
  const ctx: ApprovalViewContext = {
    profile: (id) => service.profiles.get(id),
    refusedUntil: (a) => service.approvals.refusedUntil(a),
  };
  return service.approvals.list().map((a) => approvalView(a, ctx));
}

/** The contract's view of an approval. */
export function approvalView(a: Approval, ctx: ApprovalViewContext = {}): ApprovalView {
  const view: ApprovalView = {
    id: a.id,
    state: a.state === 'used' ? 'approved' : a.state,
    vmId: a.vmId ?? null,
    connection: null,
    clientAddress: a.client,
    chipId: a.chipId ?? null,
    anchoredBy: a.anchor ?? null,
    policy: a.policy,
    ...(a.firmwareApi ? { firmwareApi: a.firmwareApi } : {}),
    createdAt: new Date(a.createdAt).toISOString(),
    expiresAt: new Date(a.expiresAt).toISOString(),
  };
  if (a.decidedAt !== undefined) view.decidedAt = new Date(a.decidedAt).toISOString();
  if (a.chipProven !== undefined) view.chipProven = a.chipProven;
  const profile = a.vmId !== undefined ? ctx.profile?.(a.vmId) : undefined;
  if (profile) {
    view.profileName = profile.name;
    view.secrets = profile.secrets.map((s) => ({
      guid: s.guid,
      kind: s.kind,
      ...(s.label !== undefined ? { label: s.label } : {}),
    }));
  }
  if (a.state === 'denied' && a.reason === 'owner') view.denyMode = a.denyOnce ? 'once' : 'for-a-while';
  const until = ctx.refusedUntil?.(a);
  if (until !== undefined) view.refusedUntil = new Date(until).toISOString();
  return view;
}

export interface HandlerContext {
  service: RunningService;
  mode: AppInfo['mode'];
  version: string;
  dataDir: string;
  hostToken?: string;
  firstRun: { get(): boolean; complete(): void };
  /** The first-run demo's firmware image (default: findDemoFirmware(), the shipped assets/demo). */
  demoFirmware?: string;
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
  const eventsOf = (filter: ParsedArgs<'events:list'>[0]) => service.owner.events(filter);
  // Whether the keychain takes a write now, asked at most every 30 s (app:info is polled by the UI).
  let probed: { at: number; result: { unavailable?: string } } | undefined;
  const keychainProblem = async (): Promise<{ unavailable?: string }> => {
    const store = service.secretStore;
    if (store.kind !== 'keychain' || !store.probeWritable) return {};
    if (probed && Date.now() - probed.at < 30_000) return probed.result;
    let result: { unavailable?: string } = {};
    try {
      await store.probeWritable();
    } catch (e) {
      const detail = (e as { detail?: unknown }).detail;
      result = {
        unavailable: typeof detail === 'string' ? detail : e instanceof Error ? e.message : String(e),
      };
    }
    probed = { at: Date.now(), result };
    return result;
  };

  return {
    'profiles:list': async () => service.profiles.list(),
    'profiles:get': async (id) => service.profiles.get(id) ?? null,
    // Through OwnerService: the same validation, firmware checks and warnings as PUT /v1/vm.
    'profiles:save': async (profile) => service.owner.saveProfile(profile),
    'profiles:duplicate': async (id, newId) => duplicateProfile(service, requireProfile(id), newId),
    'profiles:delete': async (id) => service.owner.deleteVm(id),

    'secrets:set': async (vmId, secret) => {
      const p = requireProfile(vmId);
      if (secret.kind === 'raw' && secret.guid === LUKS_PASSPHRASE_GUID) {
        // Raw bytes under the disk passphrase's GUID would silently replace the passphrase.
        throw coded(
          'bad-arguments',
          `${LUKS_PASSPHRASE_GUID} is the disk (LUKS) passphrase's GUID: set it as a LUKS passphrase`,
        );
      }
      const guid = secret.kind === 'luks-passphrase' ? LUKS_PASSPHRASE_GUID : secret.guid;
      const bytes =
        secret.kind === 'luks-passphrase'
          ? new TextEncoder().encode(secret.passphrase)
          : fromBase64(secret.dataBase64);
      await service.secretStore.set(secretAccount(vmId, guid), bytes);
      const ref = { guid, kind: secret.kind, ...(secret.label ? { label: secret.label } : {}) };
      const updated = service.profiles.put({
        ...p,
        secrets: [...p.secrets.filter((s) => s.guid !== guid), ref],
      });
      return { ref, warnings: await service.owner.profileWarnings(updated) };
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
    'artifacts:rename': async (sha256, name) => {
      await service.artifacts.rename(sha256, name);
      return artifactImportsFor(service).inspect(sha256);
    },
    'artifacts:delete': async (sha256) => {
      if (!service.artifacts.has(sha256)) throw coded('artifact-not-found', `no artifact ${sha256}`);
      const users = service.profiles
        .list()
        .filter(
          (p) =>
            (p.firmware.kind === 'artifact' && p.firmware.sha256 === sha256) ||
            p.kernelHash === sha256 ||
            p.initrdHash === sha256,
        );
      if (users.length > 0) {
        const names = users.map((p) => `${p.name} (${p.id})`).join(', ');
        throw coded(
          'artifact-in-use',
          `${users.length === 1 ? 'the profile' : 'the profiles'} ${names} ${users.length === 1 ? 'uses' : 'use'} this artifact: change or delete ${users.length === 1 ? 'it' : 'them'} first`,
        );
      }
      await service.artifacts.delete(sha256);
    },
    'digests:preview': async (draft) => previewDigests(service.digests, draft),

    'approvals:list': async () => approvalViews(service),
    'approvals:decide': async (id, decision) => {
      service.owner.decide(id, decision);
    },
    'approvals:forget': async (id) => {
      const a = service.approvals.forget(id);
      service.audit.append({
        type: 'decision',
        result: 'info',
        client: a.client,
        ...(a.vmId !== undefined ? { vmId: a.vmId } : {}),
        message: `approval ${a.id}: the owner forgot the decision (${a.state}); identical launches ask again`,
        details: { approval: a.id },
      });
    },

    'events:list': async (filter) => eventsOf(filter),
    'events:export': async (filter) => ({
      fileName: `sev-attest-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
      json: JSON.stringify(eventsOf(filter), null, 2),
    }),

    'listener:status': async () => service.listenerStatus(),
    'listener:configure': async (config) =>
      service.configureListener({
        host: config.host,
        port: config.port,
        tls: config.tls,
        hostToken: config.hostToken,
        allowNonLoopback: config.confirmNonLoopback === true,
      }),
    'listener:tokens': async () => ({ ownerToken: service.ownerToken, hostToken: service.hostToken ?? null }),

    'tunnel:status': async () => service.tunnel.status(),
    'tunnel:configure': async (config) => service.tunnel.configure(config),

    'hostSetup:get': async (vmId) => {
      const tunnel = await service.tunnel.status();
      const tunnelSet = tunnel.state !== 'off' && tunnel.remotePort !== undefined;
      return buildHostSetup({
        profile: requireProfile(vmId),
        listenerUrl: service.url,
        ...(service.tlsFingerprint !== undefined ? { tlsFingerprint: service.tlsFingerprint } : {}),
        hostTokenRequired: ctx.hostToken !== undefined,
        ...(tunnelSet
          ? {
              tunnel: {
                remotePort: tunnel.remotePort!,
                ...(tunnel.target !== undefined ? { target: tunnel.target } : {}),
              },
            }
          : {}),
      });
    },
    // Without a vmId: the first-run demo profile, created (firmware, demo passphrase) on first use.
    'demo:run': async (options) => {
      const vmId = options.vmId ?? (await ensureDemoProfile(service, ctx.demoFirmware)).profile.id;
      return demoRunnerFor(service, ctx.hostToken).run({ ...options, vmId });
    },
    ...bundleHandlers(service),

    'app:info': async () => ({
      version: ctx.version,
      mode: ctx.mode,
      platform: process.platform,
      firstRunComplete: ctx.firstRun.get(),
      dataDir: ctx.dataDir,
      secretStore: {
        kind: service.secretStore.kind,
        note: service.secretStore.description,
        ...(await keychainProblem()),
      },
    }),
    'app:completeFirstRun': async () => ctx.firstRun.complete(),
    'shell:openExternal': async (url) => ctx.openExternal(url),
  };
}

/**
 * Copies a profile under a new id with its secrets: each value is read from the SecretStore and written
 * under the new id's account. A secret that cannot be copied (keychain locked, value missing) is left
 * out of the copy and named in the warnings; the copy itself is still made.
 */
export async function duplicateProfile(
  service: RunningService,
  source: VmProfile,
  newId: string,
): Promise<{ profile: VmProfile; warnings: string[] }> {
  if (service.profiles.get(newId)) throw coded('vm-exists', `a VM profile ${newId} exists already`);
  const secrets: VmProfile['secrets'] = [];
  const warnings: string[] = [];
  for (const ref of source.secrets) {
    const what = `secret ${ref.label ?? ref.guid}`;
    let value: Uint8Array | undefined;
    try {
      value = await service.secretStore.get(secretAccount(source.id, ref.guid));
    } catch (e) {
      warnings.push(`${what} was not copied: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    if (!value) {
      warnings.push(`${what} was not copied: the keychain holds no value for ${source.id}`);
      continue;
    }
    try {
      await service.secretStore.set(secretAccount(newId, ref.guid), value);
      secrets.push(ref);
    } catch (e) {
      warnings.push(`${what} was not copied: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      wipe(value);
    }
  }
  const { createdAt: _c, updatedAt: _u, ...fields } = source;
  let profile: VmProfile;
  try {
    profile = service.profiles.put({ ...fields, id: newId, name: `${source.name} (copy)`, secrets });
  } catch (e) {
    // No orphan values under an id that has no profile.
    for (const ref of secrets)
      await service.secretStore.delete(secretAccount(newId, ref.guid)).catch(() => {});
    throw e;
  }
  await service.audit.appendDurable({
    type: 'profile',
    result: 'ok',
    vmId: newId,
    message: `VM ${newId} registered as a copy of ${source.id}`,
    details: { secrets: secrets.map((r) => r.guid), warnings },
  });
  return { profile, warnings };
}

/** First-run completion kept in the settings (both modes), so it survives restarts. */
export function settingsFirstRun(service: RunningService): HandlerContext['firstRun'] {
  return {
    get: () => service.settings.get().firstRunDone,
    complete: () => void service.settings.update({ firstRunDone: true }),
  };
}

/** Forwards service changes to the UI event bus; returns the disconnect function. */
export function connectUiEvents(service: RunningService, bus: UiEventBus): () => void {
  const push = () => bus.emit('approvals:changed', approvalViews(service));
  const offApprovals = service.approvals.subscribe(push);
  const offForgotten = service.approvals.onListChange(push);
  const offAudit = service.audit.subscribe((e) => bus.emit('events:appended', e));
  const offListener = service.onListenerChange((status) => bus.emit('listener:changed', status));
  const offTunnel = service.tunnel.subscribe((status) => bus.emit('tunnel:changed', status));
  const offImports = artifactImportsFor(service).subscribe((p) => bus.emit('artifacts:progress', p));
  return () => {
    offApprovals();
    offForgotten();
    offAudit();
    offListener();
    offTunnel();
    offImports();
  };
}
