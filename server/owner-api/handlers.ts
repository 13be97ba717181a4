/**
 * The contract's handlers over the running services (server/serve/serve.ts `startService`): the same
 * object backs Electron IPC (register.ts) and the browser bridge (server/web/ui-server.ts).
 */
import { LUKS_PASSPHRASE_GUID, type VmProfile } from '../../app/profile';
import { fromBase64, toBase64, wipe } from '../../app/sev/bytes';
import type { AppInfo, ApprovalView, InvokeHandlers, ParsedArgs } from '../../app/contract/ipc';
import { DomainError } from '../../app/errors';
import type { Approval, ApprovalService } from '../services/approvals';
import type { ArtifactImportService } from '../services/artifact-import';
import type { ArtifactStore } from '../services/artifact-store';
import type { AuditLog } from '../services/audit-log';
import { previewDigests } from '../services/digest-preview';
import type { ExpectedDigests } from '../services/expected-digests';
import type { ExpectedSnpMeasurements } from '../services/expected-snp-measurements';
import { previewSnpMeasurements } from '../services/snp-measurement-preview';
import type { OwnerService } from '../services/owner-service';
import type { HostSetupService } from '../services/host-setup-service';
import type { ProfileStore } from '../services/profile-store';
import type { SecretActor, SecretService } from '../services/secret-service';
import type { RunningService } from '../serve/serve';
import type { TunnelController } from '../serve/tunnel-controller';
import type { UiEventBus } from './event-bus';
import { bundleHandlers } from './bundle-handlers';
import type { PinnedCekStore } from '../services/pinned-ceks';

/** What an approval card shows besides the approval itself (the profile, until when a denial holds). */
export interface ApprovalViewContext {
  profile?(vmId: string): VmProfile | undefined;
  refusedUntil?(a: Approval): number | undefined;
}

/** The view of every approval the service holds, with its profile and denial state. */
export function approvalViews(deps: {
  approvals: ApprovalService;
  profiles: Pick<ProfileStore, 'get'>;
}): ApprovalView[] {
  const ctx: ApprovalViewContext = {
    profile: (id) => deps.profiles.get(id),
    refusedUntil: (a) => deps.approvals.refusedUntil(a),
  };
  return deps.approvals.list().map((a) => approvalView(a, ctx));
}

/** The contract's view of an approval. */
export function approvalView(a: Approval, ctx: ApprovalViewContext = {}): ApprovalView {
  const view: ApprovalView = {
    id: a.id,
    kind: a.kind ?? 'sev-launch',
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
  if (a.snp !== undefined) view.snp = { ...a.snp, resources: [...a.snp.resources] };
  const profile = a.vmId !== undefined ? ctx.profile?.(a.vmId) : undefined;
  if (profile) {
    view.profileName = profile.name;
    view.secrets = profile.secrets.map((s) => ({
      guid: s.guid,
      kind: s.kind,
      ...(s.label !== undefined ? { label: s.label } : {}),
      ...(s.resource !== undefined ? { resource: s.resource } : {}),
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
  firstRun: { get(): boolean; complete(): void };
  openExternal(url: string): Promise<void>;
}

type Handlers<P extends string> = Pick<InvokeHandlers, Extract<keyof InvokeHandlers, `${P}:${string}`>>;

/** `profiles:*`: the owner's VM profiles, saved with the same checks and warnings as PUT /v1/vm. */
export function profileHandlers(
  deps: { profiles: ProfileStore; owner: OwnerService; secrets: SecretService },
  actor: SecretActor,
): Handlers<'profiles'> {
  return {
    'profiles:list': async () => deps.profiles.list(),
    'profiles:get': async (id) => deps.profiles.get(id) ?? null,
    'profiles:save': async (profile) => deps.owner.saveProfile(profile),
    'profiles:duplicate': async (id, newId) => deps.secrets.duplicateProfile(id, newId, actor),
    'profiles:delete': async (id) => deps.owner.deleteVm(id, actor),
  };
}

/** `secrets:*`: every one goes through SecretService (audited, values wiped). */
export function secretHandlers(
  deps: { secrets: SecretService; owner: Pick<OwnerService, 'profileWarnings'> },
  actor: SecretActor,
): Handlers<'secrets'> {
  return {
    'secrets:set': async (vmId, secret) => {
      const { ref, profile } = await deps.secrets.set(
        vmId,
        {
          guid: secret.kind === 'luks-passphrase' ? LUKS_PASSPHRASE_GUID : secret.guid,
          kind: secret.kind,
          ...(secret.label ? { label: secret.label } : {}),
          ...(secret.resource ? { resource: secret.resource } : {}),
          value:
            secret.kind === 'luks-passphrase'
              ? new TextEncoder().encode(secret.passphrase)
              : fromBase64(secret.dataBase64),
        },
        actor,
      );
      return { ref, warnings: await deps.owner.profileWarnings(profile) };
    },
    'secrets:reveal': async (vmId, guid) => {
      const { ref, value } = await deps.secrets.reveal(vmId, guid, actor);
      try {
        return {
          guid,
          kind: ref.kind,
          base64: toBase64(value),
          ...(ref.kind === 'luks-passphrase' ? { text: new TextDecoder().decode(value) } : {}),
        };
      } finally {
        wipe(value);
      }
    },
    'secrets:delete': async (vmId, guid) => {
      await deps.secrets.delete(vmId, guid, actor);
    },
  };
}

/** `artifacts:*` and `digests:preview` (SEV digests, or SEV-SNP measurements for an SNP draft). */
export function artifactHandlers(deps: {
  imports: ArtifactImportService;
  digests: ExpectedDigests;
  snpMeasurements: ExpectedSnpMeasurements;
  artifacts: ArtifactStore;
  profiles: Pick<ProfileStore, 'list'>;
}): Handlers<'artifacts' | 'digests'> {
  return {
    'artifacts:list': async () => deps.imports.list(),
    'artifacts:import': async (request) => deps.imports.import(request),
    'artifacts:cancelImport': async (importId) => deps.imports.cancel(importId),
    'artifacts:inspect': async (sha256) => deps.imports.inspect(sha256),
    'artifacts:rename': async (sha256, name) => {
      await deps.artifacts.rename(sha256, name);
      return deps.imports.inspect(sha256);
    },
    'artifacts:delete': async (sha256) => {
      if (!deps.artifacts.has(sha256)) throw new DomainError('artifact-not-found', `no artifact ${sha256}`);
      const users = deps.profiles
        .list()
        .filter(
          (p) =>
            (p.firmware.kind === 'artifact' && p.firmware.sha256 === sha256) ||
            p.kernelHash === sha256 ||
            p.initrdHash === sha256,
        );
      if (users.length > 0) {
        const one = users.length === 1;
        const names = users.map((p) => `${p.name} (${p.id})`).join(', ');
        throw new DomainError(
          'artifact-in-use',
          `${one ? 'the profile' : 'the profiles'} ${names} ${one ? 'uses' : 'use'} this artifact: change or delete ${one ? 'it' : 'them'} first`,
        );
      }
      await deps.artifacts.delete(sha256);
    },
    'digests:preview': async (draft) =>
      draft.scheme === 'amd-sev-snp'
        ? previewSnpMeasurements(deps.snpMeasurements, draft)
        : previewDigests(deps.digests, draft),
  };
}

/** `approvals:*` and `events:*`: the owner's decisions and the audit trail. */
export function decisionHandlers(deps: {
  approvals: ApprovalService;
  owner: OwnerService;
  profiles: Pick<ProfileStore, 'get'>;
  audit: Pick<AuditLog, 'append'>;
}): Handlers<'approvals' | 'events'> {
  const eventsOf = (filter: ParsedArgs<'events:list'>[0]) => deps.owner.events(filter);
  return {
    'approvals:list': async () => approvalViews(deps),
    'approvals:decide': async (id, decision) => {
      deps.owner.decide(id, decision);
    },
    'approvals:forget': async (id) => {
      const a = deps.approvals.forget(id);
      deps.audit.append({
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
  };
}

/** `listener:*`, `tunnel:*` and `hostSetup:get`: where hosts reach the service. */
export function listenerHandlers(deps: {
  service: Pick<
    RunningService,
    'listenerStatus' | 'configureListener' | 'ownerToken' | 'hostToken' | 'url' | 'tlsFingerprint'
  >;
  tunnel: TunnelController;
  hostSetup: HostSetupService;
}): Handlers<'listener' | 'tunnel' | 'hostSetup'> {
  const { service } = deps;
  return {
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
    'tunnel:status': async () => deps.tunnel.status(),
    'tunnel:configure': async (config) => deps.tunnel.configure(config),
    'hostSetup:get': async (vmId, options) => deps.hostSetup.get(vmId, options),
    'hostSetup:snpKeys': async (vmId, options) => deps.hostSetup.snpKeys(vmId, options),
  };
}

/** `chips:*`: CEKs pinned per chip, through OwnerService (the same checks and audit events as /v1/chips). */
export function chipHandlers(deps: {
  pinnedCeks: Pick<PinnedCekStore, 'list'>;
  owner: Pick<OwnerService, 'pinCek' | 'unpinCek'>;
}): Handlers<'chips'> {
  return {
    'chips:list': async () =>
      deps.pinnedCeks.list().map((p) => ({
        chipId: p.chipId,
        ...(p.label !== undefined ? { label: p.label } : {}),
        pinnedAt: p.pinnedAt,
      })),
    'chips:pinCek': async (chipId, cekBase64, label) => {
      const b = await deps.owner.pinCek(chipId, fromBase64(cekBase64), label);
      return {
        chipId: b.chipId,
        ...(b.label !== undefined ? { label: b.label } : {}),
        pinnedAt: b.pinnedAt,
      };
    },
    'chips:unpin': async (chipId) => {
      const id = chipId.toLowerCase();
      if (!deps.pinnedCeks.list().some((p) => p.chipId === id)) return false;
      await deps.owner.unpinCek(id);
      return true;
    },
  };
}

/** Builds every contract handler, each group from the services it uses. */
export function createInvokeHandlers(ctx: HandlerContext): InvokeHandlers {
  const { service } = ctx;
  const actor: SecretActor = { via: ctx.mode === 'desktop' ? 'ipc' : 'browser' };
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
    ...profileHandlers(service, actor),
    ...secretHandlers(service, actor),
    ...artifactHandlers(service),
    ...decisionHandlers(service),
    ...listenerHandlers({ service, tunnel: service.tunnel, hostSetup: service.hostSetup }),
    // Without a vmId: the first-run demo profile, created (firmware, demo passphrase) on first use.
    'demo:run': async (options) => service.demo.run(options),
    ...bundleHandlers(service),
    ...chipHandlers(service),
    'app:info': async () => ({
      version: ctx.version,
      mode: ctx.mode,
      platform: process.platform,
      firstRunComplete: ctx.firstRun.get(),
      dataDir: ctx.dataDir,
      secretStore: {
        kind: service.secrets.kind,
        note: service.secrets.description,
        ...(await keychainProblem()),
      },
    }),
    'app:completeFirstRun': async () => ctx.firstRun.complete(),
    'shell:openExternal': async (url) => ctx.openExternal(url),
  };
}

/** First-run completion kept in the settings (both modes), so it survives restarts. */
export function settingsFirstRun(service: Pick<RunningService, 'settings'>): HandlerContext['firstRun'] {
  return {
    get: () => service.settings.get().firstRunDone,
    complete: () => void service.settings.update({ firstRunDone: true }),
  };
}

/** Forwards service changes to the UI event bus; returns the disconnect function. */
export function connectUiEvents(
  service: Pick<
    RunningService,
    'approvals' | 'audit' | 'onListenerChange' | 'tunnel' | 'imports' | 'profiles'
  >,
  bus: UiEventBus,
): () => void {
  const push = () => bus.emit('approvals:changed', approvalViews(service));
  const offApprovals = service.approvals.subscribe(push);
  const offForgotten = service.approvals.onListChange(push);
  const offAudit = service.audit.subscribe((e) => bus.emit('events:appended', e));
  const offListener = service.onListenerChange((status) => bus.emit('listener:changed', status));
  const offTunnel = service.tunnel.subscribe((status) => bus.emit('tunnel:changed', status));
  const offImports = service.imports.subscribe((p) => bus.emit('artifacts:progress', p));
  return () => {
    offApprovals();
    offForgotten();
    offAudit();
    offListener();
    offTunnel();
    offImports();
  };
}
