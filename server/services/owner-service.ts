/**
 * The owner's operations, shared by the REST owner routes and (later) the desktop IPC: VM profiles with
 * their secret values split off into the SecretStore, firmware artifacts, approvals, the audit log and
 * health. Secret values go in, never come out.
 */
import type { Readable } from 'node:stream';
import type { AuditEvent, AuditFilter } from '../../app/audit';
import { DomainError } from '../../app/errors';
import { wipe } from '../../app/sev/bytes';
import {
  VmIdSchema,
  VmProfileSchema,
  type FirmwareRef,
  type SecretRef,
  type VmProfile,
} from '../../app/profile';
import { hasSecretArea, supportsMeasuredDirectBoot, hasSevEsResetAddress } from '../../app/digest/ovmf';
import type {
  FirmwareSource,
  ServiceHealth,
  VmRegistration,
  VmRegistrationResult,
} from '../../app/vm-registration';
import type { Approval, ApprovalDecision, ApprovalService } from './approvals';
import { ArtifactError, type ArtifactStore, type ImportOptions } from './artifact-store';
import type { AuditLog } from './audit-log';
import type { ConnectionStore } from './connections';
import type { ExpectedDigests } from './expected-digests';
import type { ExpectedSnpMeasurements } from './expected-snp-measurements';
import { ProfileValidationError, type ProfileStore } from './profile-store';
import type { SecretActor, SecretService } from './secret-service';
import { normalizeChipIdHex, type PinnedCek, type PinnedCekStore } from './pinned-ceks';

export interface OwnerServiceDeps {
  profiles: ProfileStore;
  secrets: SecretService;
  artifacts: ArtifactStore;
  approvals: ApprovalService;
  connections: ConnectionStore;
  digests: ExpectedDigests;
  /** SEV-SNP profiles' OVMF checks (and forgetting a replaced artifact's measurements). */
  snpMeasurements: ExpectedSnpMeasurements;
  audit: AuditLog;
  /** Where the owner's event list and stream come from (serve --database: every replica's); default audit. */
  events?: {
    list(filter?: AuditFilter): AuditEvent[];
    subscribe(cb: (e: AuditEvent) => void): () => void;
  };
  /** CEKs pinned per chip (offline owners); absent: pinning is refused. */
  pinnedCeks?: PinnedCekStore;
  /** What /v1/health reports about TLS. */
  tls?: () => { enabled: boolean; fingerprint?: string };
  version?: string;
  now?: () => number;
}

/**
 * Largest artifact the owner may store (PUT /v1/artifacts, browser uploads): 2 GiB, room for any
 * kernel, initrd or firmware image. Host-facing bodies have their own small limits (ListenerLimits).
 */
export const MAX_ARTIFACT_BYTES = 2 * 1024 * 1024 * 1024;

/** "2 GiB (2147483648 bytes)": a size limit as people read it, with the exact figure. */
export function describeBytes(n: number): string {
  const units: Array<[number, string]> = [
    [1024 ** 3, 'GiB'],
    [1024 ** 2, 'MiB'],
    [1024, 'KiB'],
  ];
  for (const [unit, name] of units) {
    if (n >= unit) {
      const v = n / unit;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${name} (${n} bytes)`;
    }
  }
  return `${n} bytes`;
}

export class OwnerService {
  private readonly startedAt: number;
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: OwnerServiceDeps) {
    this.startedAt = (deps.now ?? Date.now)();
    // Every decision, the owner's or the timeout's, is an audit event.
    this.unsubscribe = deps.approvals.subscribe((a) => {
      if (a.state !== 'approved' && a.state !== 'denied') return;
      try {
        deps.audit.append({
          type: 'decision',
          result: a.state === 'approved' ? 'ok' : 'refused',
          client: a.client,
          ...(a.vmId !== undefined ? { vmId: a.vmId } : {}),
          ...(a.chipId !== undefined ? { chipId: a.chipId } : {}),
          ...(a.anchor !== undefined ? { anchor: a.anchor } : {}),
          reason: a.state === 'approved' ? 'approved' : a.reason === 'timeout' ? 'timeout' : 'denied',
          message: `approval ${a.id} ${a.state} (${a.reason ?? 'owner'})`,
          details: { approval: a.id },
        });
      } catch {
        // The log reports its own failures.
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }

  listVms(): VmProfile[] {
    return this.deps.profiles.list();
  }

  getVm(id: string): VmProfile {
    const p = this.deps.profiles.get(id);
    if (!p) throw new DomainError('unknown-vm', `no VM registered as ${id}`);
    return p;
  }

  /** Registers or replaces a VM. Without `secrets`, a replaced VM keeps its secrets. */
  async registerVm(
    id: string,
    registration: VmRegistration,
    actor: SecretActor = { via: 'rest' },
  ): Promise<VmRegistrationResult> {
    if (!VmIdSchema.safeParse(id).success) {
      throw new DomainError(
        'bad-request',
        'vmid: letters, digits, dot, dash and underscore, starting with a letter or digit (at most 64)',
      );
    }
    const fields = { ...registration.fields, id };
    const warnings: string[] = [];
    const firmware = await this.resolveFirmware(registration.firmware);
    const secretsComing =
      registration.secrets !== undefined
        ? registration.secrets.length > 0
        : (this.deps.profiles.get(id)?.secrets.length ?? 0) > 0;
    warnings.push(...(await this.checkFirmware(fields, firmware, secretsComing)));

    const previous = this.deps.profiles.get(id);
    let secrets: SecretRef[] = previous?.secrets ?? [];
    // The whole profile is checked before any value reaches the keychain (an SNP secret without its
    // resource path must not leave a value behind that no profile names).
    const planned = VmProfileSchema.safeParse({
      ...fields,
      firmware,
      secrets: registration.secrets?.map(({ value: _v, ...ref }) => ref) ?? secrets,
    });
    if (!planned.success) {
      for (const v of registration.secrets ?? []) wipe(v.value);
      const i = planned.error.issues[0];
      throw new DomainError('bad-request', i ? `${i.path.join('.') || 'vm'}: ${i.message}` : 'invalid VM');
    }
    const written: string[] = [];
    if (registration.secrets !== undefined) {
      const values = registration.secrets;
      const guids = values.map((v) => v.guid);
      if (new Set(guids).size !== guids.length)
        throw new DomainError('bad-request', 'secrets: each GUID may appear once');
      await this.deps.secrets.storeValues(id, values, actor);
      secrets = values.map(({ value: _v, ...ref }) => ref);
      written.push(...guids);
    }
    let stored: VmProfile;
    try {
      stored = this.deps.profiles.put({ ...fields, firmware, secrets });
      await this.deps.profiles.flushed();
    } catch (e) {
      if (e instanceof ProfileValidationError) {
        const i = e.issues[0];
        throw new DomainError('bad-request', i ? `${i.path}: ${i.message}` : 'invalid VM');
      }
      throw e;
    }
    // Stale secret values of a replaced VM go after the new profile is durable.
    if (registration.secrets !== undefined && previous) {
      const stale = previous.secrets.map((s) => s.guid).filter((g) => !written.includes(g));
      await this.deps.secrets.deleteValues(id, stale, actor);
    }
    if (previous?.firmware.kind === 'artifact') this.forgetFirmware(previous.firmware.sha256);
    // On disk before the owner's reply: an acknowledged change is never missing from the log.
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      vmId: id,
      message: previous ? `VM ${id} replaced` : `VM ${id} registered`,
      details: { secrets: secrets.map((s) => s.guid), warnings },
    });
    return { profile: stored, warnings };
  }

  /**
   * The desktop/browser UI's save: the same firmware checks and warnings as putVm, for a whole profile.
   * Secret refs are managed by the secret operations: a replaced profile keeps its stored refs, a new one
   * starts without any (a ref without a value in the SecretStore would release nothing).
   */
  async saveProfile(profile: VmProfile): Promise<{ profile: VmProfile; warnings: string[] }> {
    const previous = this.deps.profiles.get(profile.id);
    // The stored refs stay (values live in the keychain); only their SNP resource paths follow the save.
    const secrets = (previous?.secrets ?? []).map((stored): SecretRef => {
      const { resource: _old, ...rest } = stored;
      if (profile.scheme !== 'amd-sev-snp') return rest;
      const resource = profile.secrets.find((s) => s.guid === stored.guid)?.resource ?? stored.resource;
      return resource !== undefined ? { ...rest, resource } : rest;
    });
    let firmware = profile.firmware;
    if (firmware.kind === 'artifact') {
      // Imported on another replica (serve --database): copied here first.
      await this.deps.artifacts.ensureLocal(firmware.sha256).catch(() => false);
      const info = this.deps.artifacts.info(firmware.sha256);
      if (!info) throw new DomainError('unknown-artifact', `no artifact ${firmware.sha256}: import it first`);
      firmware = { ...firmware, size: info.size };
    }
    const warnings = await this.checkFirmware(profile, firmware, secrets.length > 0);
    let stored: VmProfile;
    try {
      stored = this.deps.profiles.put({ ...profile, firmware, secrets });
      await this.deps.profiles.flushed();
    } catch (e) {
      if (e instanceof ProfileValidationError) {
        const i = e.issues[0];
        throw new DomainError('bad-request', i ? `${i.path}: ${i.message}` : 'invalid VM');
      }
      throw e;
    }
    if (previous?.firmware.kind === 'artifact') this.forgetFirmware(previous.firmware.sha256);
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      vmId: profile.id,
      message: previous ? `VM ${profile.id} replaced` : `VM ${profile.id} registered`,
      details: { secrets: secrets.map((s) => s.guid), warnings },
    });
    return { profile: stored, warnings };
  }

  /** What the owner should know about a stored profile now (e.g. secrets QEMU could not inject). */
  async profileWarnings(profile: VmProfile): Promise<string[]> {
    try {
      return await this.checkFirmware(profile, profile.firmware, profile.secrets.length > 0);
    } catch {
      // Refusals were reported when the profile was saved; here only warnings are asked for.
      return [];
    }
  }

  /** Deletes a VM and its secret values. */
  async deleteVm(id: string, actor: SecretActor = { via: 'rest' }): Promise<void> {
    const p = this.deps.profiles.get(id);
    if (!p) throw new DomainError('unknown-vm', `no VM registered as ${id}`);
    this.deps.profiles.delete(id);
    await this.deps.profiles.flushed();
    await this.deps.secrets.deleteAll(id, actor);
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      vmId: id,
      message: `VM ${id} deleted`,
    });
  }

  /** PUT /v1/artifacts (and the browser UI's upload): stores an uploaded artifact. */
  async putArtifact(
    stream: Readable,
    maxBytes = MAX_ARTIFACT_BYTES,
    options: Pick<ImportOptions, 'name' | 'onProgress' | 'signal'> = {},
  ): Promise<{ sha256: string; size: number }> {
    try {
      const info = await this.deps.artifacts.importStream(stream, { ...options, maxBytes });
      return { sha256: info.sha256, size: info.size };
    } catch (e) {
      if (e instanceof ArtifactError && e.code === 'payload-too-large') {
        throw new DomainError('payload-too-large', `artifacts are limited to ${describeBytes(maxBytes)}`);
      }
      throw e;
    }
  }

  /** The chips whose key-server CEK the owner pinned. */
  listPinnedCeks(): PinnedCek[] {
    return this.deps.pinnedCeks?.list() ?? [];
  }

  /**
   * Pins the ASK-signed CEK AMD's key server gives for a chip (offline owners import it once): it then
   * proves that chip's cpu-id claims, before any key-server fetch.
   */
  async pinCek(chipIdHex: string, cek: Uint8Array, label?: string): Promise<PinnedCek> {
    const store = this.requirePinnedCeks();
    const entry = store.pin(chipIdHex, cek, label);
    await store.flushed();
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      chipId: entry.chipId,
      message: `CEK pinned for chip ${entry.chipId.slice(0, 16)}...`,
      details: { pinnedCek: true, ...(label !== undefined ? { label } : {}) },
    });
    return entry;
  }

  /** Removes a chip's pinned CEK. */
  async unpinCek(chipIdHex: string): Promise<void> {
    const chipId = normalizeChipIdHex(chipIdHex);
    if (!this.requirePinnedCeks().unpin(chipId)) {
      throw new DomainError('not-found', 'no CEK is pinned for that chip');
    }
    await this.requirePinnedCeks().flushed();
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      chipId,
      message: `CEK unpinned for chip ${chipId.slice(0, 16)}...`,
      details: { pinnedCek: false },
    });
  }

  private requirePinnedCeks(): PinnedCekStore {
    if (!this.deps.pinnedCeks) throw new DomainError('bad-request', 'this service keeps no pinned CEKs');
    return this.deps.pinnedCeks;
  }

  listApprovals(): Approval[] {
    return this.deps.approvals.list();
  }

  decide(id: string, decision: ApprovalDecision): Approval {
    return this.deps.approvals.decide(id, decision);
  }

  /** The owner's events; `scope: 'replica'` is this replica's own log (serve --database shows every replica's). */
  events(filter?: AuditFilter, scope: 'all' | 'replica' = 'all'): AuditEvent[] {
    return (scope === 'replica' ? this.deps.audit : (this.deps.events ?? this.deps.audit)).list(filter);
  }

  subscribeEvents(cb: (e: AuditEvent) => void, scope: 'all' | 'replica' = 'all'): () => void {
    return (scope === 'replica' ? this.deps.audit : (this.deps.events ?? this.deps.audit)).subscribe(cb);
  }

  health(): ServiceHealth {
    const r = this.deps.audit.retainedStatus?.();
    return {
      version: this.deps.version ?? '0.1.0',
      tls: this.deps.tls?.() ?? { enabled: false },
      secretStore: this.deps.secrets.description,
      uptimeSeconds: Math.round(((this.deps.now ?? Date.now)() - this.startedAt) / 1000),
      connections: this.deps.connections.openCount,
      pendingApprovals: this.deps.approvals.pendingCount,
      ...(r ? { audit: { retainedBytes: r.bytes, retainedBudgetBytes: r.budgetBytes, full: r.full } } : {}),
    };
  }

  private forgetFirmware(sha256: string): void {
    this.deps.digests.forget(sha256);
    this.deps.snpMeasurements.forget(sha256);
  }

  /** What the firmware must support for the profile (refusals), and what the owner should know (warnings). */
  private async checkFirmware(
    fields: Pick<VmProfile, 'scheme' | 'kernelHash' | 'cpuSignatures' | 'cpuCounts' | 'snp'>,
    firmware: FirmwareRef,
    hasSecrets: boolean,
  ): Promise<string[]> {
    const warnings: string[] = [];
    if (firmware.kind !== 'artifact') return warnings;
    if (fields.scheme === 'amd-sev-snp') return this.checkSnpFirmware(fields, firmware.sha256);
    const info = await this.deps.digests.firmwareInfo(firmware.sha256).catch((e: unknown) => {
      throw new DomainError('bad-request', `firmware: ${e instanceof Error ? e.message : String(e)}`);
    });
    if (fields.kernelHash !== undefined) {
      const cap = supportsMeasuredDirectBoot(info);
      if (!cap.ok) throw new DomainError('bad-request', `kernel-hash: ${cap.reason}`);
    }
    if (fields.scheme === 'amd-sev-es') {
      const cap = hasSevEsResetAddress(info);
      if (!cap.ok) throw new DomainError('bad-request', `scheme: ${cap.reason}`);
      if (fields.cpuSignatures.length === 0) {
        throw new DomainError(
          'bad-request',
          'cpu-signature: SEV-ES digests need the guest CPU signature (family, model, stepping)',
        );
      }
    }
    if (hasSecrets) {
      const cap = hasSecretArea(info);
      if (!cap.ok) warnings.push(`secrets are registered but ${cap.reason}; QEMU could not inject them`);
    }
    return warnings;
  }

  /** An SNP profile's OVMF: SNP metadata present, a KERNEL_HASHES section for direct boot, APs startable. */
  private async checkSnpFirmware(
    fields: Pick<VmProfile, 'kernelHash' | 'cpuSignatures' | 'cpuCounts' | 'snp'>,
    sha256: string,
  ): Promise<string[]> {
    const info = await this.deps.snpMeasurements.firmwareInfo(sha256).catch((e: unknown) => {
      throw new DomainError('bad-request', `firmware: ${e instanceof Error ? e.message : String(e)}`);
    });
    if (fields.kernelHash !== undefined && !info.sections.some((s) => s.kind === 'kernel-hashes')) {
      throw new DomainError(
        'bad-request',
        'kernel-hash: this firmware declares no KERNEL_HASHES section, so QEMU cannot measure a kernel (use an AmdSev OVMF build)',
      );
    }
    if (fields.cpuCounts.some((n) => n > 1) && info.resetAddress === 0) {
      throw new DomainError(
        'bad-request',
        'cpu-counts: this firmware declares AP reset address 0, so only one vCPU can start',
      );
    }
    if ((fields.snp?.vmmType ?? 'qemu') === 'qemu' && fields.cpuSignatures.length === 0) {
      throw new DomainError(
        'bad-request',
        'cpu-signature: QEMU puts the guest vCPU signature in every VMSA, so SNP measurements need it (family, model, stepping)',
      );
    }
    return [];
  }

  private async resolveFirmware(source: FirmwareSource): Promise<FirmwareRef> {
    if (source.kind === 'digests') {
      return { kind: 'digests', launchDigests: source.launchDigests.map((h) => h.toLowerCase()) };
    }
    if (source.kind === 'bytes') {
      const info = await this.deps.artifacts.importBytes(source.bytes, { name: 'firmware' });
      return { kind: 'artifact', sha256: info.sha256, size: info.size };
    }
    const sha = source.sha256.toLowerCase();
    await this.deps.artifacts.ensureLocal(sha).catch(() => false);
    const info = this.deps.artifacts.info(sha);
    if (!info)
      throw new DomainError('unknown-artifact', `no artifact ${sha}: upload it with PUT /v1/artifacts first`);
    return { kind: 'artifact', sha256: sha, size: info.size };
  }
}
