/**
 * Measurement bundles as an owner service: the signing key (OS keychain, SecretStore account
 * 'bundle-signing-key'), export of a profile over a selected matrix in every format, verification against
 * the trusted keys, and import as a profile with precomputed digests. Shared by the CLI, the REST owner
 * routes and (later) the desktop IPC.
 */
import {
  buildBundleBody,
  buildSnpBundleBody,
  generateSigningKey,
  keyFingerprint,
  publicKeyOf,
  signBundle,
  verifyBundle,
  type BundleBody,
  type BundleDocument,
  type MatrixSelection,
  type TrustedKey,
  type VerifiedBundle,
} from '../../app/bundle/bundle';
import { BundleError } from '../../app/bundle/errors';
import { exportBundle, type ExportedFile, type ExportFormat } from '../../app/bundle/export';
import { bundleRegistration } from '../../app/bundle/registration';
import { DomainError } from '../../app/errors';
import type { SecretValue, VmRegistrationResult } from '../../app/vm-registration';
import { prepareFirmware, type FirmwareMeasurementState } from '../../app/digest/launch-digest';
import { sha256File } from '../../app/digest/stream-hash';
import { prepareSnpOvmf, type SnpOvmfState } from '../../app/snp/measure/launch-digest';
import { VmIdSchema, type VmProfile } from '../../app/profile';
import { toBase64, toHex, wipe } from '../../app/sev/bytes';
import type { ArtifactStore } from './artifact-store';
import type { AuditLog } from './audit-log';
import type { OwnerService } from './owner-service';
import type { ProfileStore } from './profile-store';
import type { SecretStore } from './secret-store';
import type { TrustedKeyStore } from './trusted-keys';

/** The keychain account of the owner's bundle signing key (32-byte Ed25519 seed). */
export const SIGNING_KEY_ACCOUNT = 'bundle-signing-key';

export interface BundleServiceDeps {
  profiles: ProfileStore;
  secrets: SecretStore;
  trustedKeys: TrustedKeyStore;
  artifacts?: ArtifactStore;
  /** When present, imports go through it (schema, secrets, audit); else straight to the profile store. */
  owner?: OwnerService;
  /** Audits imports when there is no owner service. */
  audit?: AuditLog;
  version?: string;
}

export interface SigningKeyInfo {
  fingerprint: string;
  /** Raw public key, base64: what another owner adds with `bundle trust`. */
  publicKey: string;
}

export interface ExportOptions {
  selection?: MatrixSelection;
  format?: ExportFormat;
  /** A firmware file to use instead of the artifact store's copy (its SHA-256 must be the profile's). */
  firmwarePath?: string;
}

export interface ExportResult {
  document: BundleDocument;
  file: ExportedFile;
}

export interface ImportOptions {
  /** Register under this id instead of the bundle's. */
  vmId?: string;
  name?: string;
  approval?: 'manual' | 'auto';
  /** Secrets to release to the imported VM (a bundle never carries any). */
  secrets?: SecretValue[];
  /** Keys trusted for this import only, besides the stored ones. */
  extraTrusted?: TrustedKey[];
}

export interface ImportResult extends VmRegistrationResult {
  signer: VerifiedBundle['signer'];
  rows: number;
}

export class BundleService {
  private readonly firmwares = new Map<string, Promise<FirmwareMeasurementState>>();
  private readonly snpFirmwares = new Map<string, Promise<SnpOvmfState>>();

  constructor(private readonly deps: BundleServiceDeps) {}

  /** The signing key's public half, or undefined when there is none yet. */
  async signingKey(): Promise<SigningKeyInfo | undefined> {
    const sk = await this.deps.secrets.get(SIGNING_KEY_ACCOUNT);
    if (!sk) return undefined;
    try {
      const pk = publicKeyOf(sk);
      return { fingerprint: keyFingerprint(pk), publicKey: toBase64(pk) };
    } finally {
      wipe(sk);
    }
  }

  /**
   * Creates the signing key in the secret store and trusts its public key. Refuses to replace an
   * existing key unless `replace` (bundles signed with the old key then need the old key trusted).
   */
  async generateSigningKey(opts: { replace?: boolean } = {}): Promise<SigningKeyInfo & { created: boolean }> {
    const existing = await this.signingKey();
    if (existing && !opts.replace) return { ...existing, created: false };
    const sk = generateSigningKey();
    try {
      await this.deps.secrets.set(SIGNING_KEY_ACCOUNT, sk);
      const pk = publicKeyOf(sk);
      const info = { fingerprint: keyFingerprint(pk), publicKey: toBase64(pk) };
      this.deps.trustedKeys.add({ ...info, label: "this owner's signing key" });
      await this.deps.trustedKeys.flushed();
      return { ...info, created: true };
    } finally {
      wipe(sk);
    }
  }

  /** Signs a body with the owner's key (bundle-no-signing-key when there is none). */
  async sign(body: Parameters<typeof signBundle>[0]): Promise<BundleDocument> {
    const sk = await this.deps.secrets.get(SIGNING_KEY_ACCOUNT);
    if (!sk) {
      throw new BundleError(
        'bundle-no-signing-key',
        `no bundle signing key in the ${this.deps.secrets.kind} secret store: create one with \`sev-attest bundle keygen\``,
      );
    }
    try {
      return signBundle(body, sk);
    } finally {
      wipe(sk);
    }
  }

  /** The unsigned body for a selection (the UI's preview table); needs no signing key. */
  async previewProfile(vmId: string, opts: Omit<ExportOptions, 'format'> = {}): Promise<BundleBody> {
    return this.body(vmId, opts);
  }

  /** Builds, signs and renders a profile's bundle; the firmware is read and hashed once. */
  async exportProfile(vmId: string, opts: ExportOptions = {}): Promise<ExportResult> {
    const document = await this.sign(await this.body(vmId, opts));
    return { document, file: exportBundle(document, opts.format ?? 'native') };
  }

  private async body(vmId: string, opts: Omit<ExportOptions, 'format'>): Promise<BundleBody> {
    const p = this.profile(vmId);
    if (p.firmware.kind !== 'artifact') {
      throw new BundleError(
        'bundle-export-unsupported',
        `${p.id} has precomputed launch digests (imported): a bundle is computed from the firmware, which is not on this machine`,
      );
    }
    if (p.scheme === 'amd-sev-snp') {
      const firmware = await this.snpFirmware(p, opts.firmwarePath);
      return buildSnpBundleBody({
        profile: p,
        firmware,
        firmwareFile: { sha256: p.firmware.sha256, size: firmware.info.size },
        ...(p.firmware.name !== undefined ? { firmwareName: p.firmware.name } : {}),
        ...(opts.selection ? { selection: opts.selection } : {}),
        generator: `sev-attest ${this.deps.version ?? '0.1.0'}`,
      });
    }
    const firmware = await this.firmware(p, opts.firmwarePath);
    return buildBundleBody({
      profile: p,
      firmware,
      ...(p.firmware.name !== undefined ? { firmwareName: p.firmware.name } : {}),
      ...(opts.selection ? { selection: opts.selection } : {}),
      generator: `sev-attest ${this.deps.version ?? '0.1.0'}`,
    });
  }

  /** Verifies a bundle against the stored trusted keys plus `extra`. */
  verify(input: unknown, extra: TrustedKey[] = []): VerifiedBundle {
    const trusted: TrustedKey[] = [
      ...this.deps.trustedKeys.list().map((k) => ({
        fingerprint: k.fingerprint,
        ...(k.publicKey !== undefined ? { publicKey: k.publicKey } : {}),
        ...(k.label !== undefined ? { label: k.label } : {}),
      })),
      ...extra,
    ];
    return verifyBundle(input, trusted);
  }

  /** Verifies a bundle and registers it as a VM with precomputed digests (no firmware needed here). */
  async importBundle(input: unknown, opts: ImportOptions = {}): Promise<ImportResult> {
    const v = this.verify(input, opts.extraTrusted);
    const id = opts.vmId ?? v.body.vm.id;
    if (!VmIdSchema.safeParse(id).success) {
      throw new BundleError('bundle-invalid', `'${id}' is not a valid VM id`);
    }
    // An SEV-SNP profile and an SEV one are different kinds of VM (a guest that attests itself vs a host
    // that launches it): a bundle never turns one into the other under the same id.
    const existing = this.deps.profiles.get(id);
    const bundleSnp = v.body.scheme === 'amd-sev-snp';
    if (existing && (existing.scheme === 'amd-sev-snp') !== bundleSnp) {
      throw new BundleError(
        'bundle-scheme-mismatch',
        `${id} is an ${existing.scheme} profile and the bundle is ${v.body.scheme}: ${bundleSnp ? 'an SEV-SNP bundle cannot be imported as an SEV profile' : 'an SEV bundle cannot be imported as an SEV-SNP profile'}; import it under another id (--vm-id)`,
      );
    }
    const registration = bundleRegistration(v.body, id, {
      ...(opts.approval ? { approval: opts.approval } : {}),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
    });
    const extraWarnings: string[] = [];
    const secretsComing =
      (opts.secrets?.length ?? 0) > 0 || (this.deps.profiles.get(id)?.secrets.length ?? 0) > 0;
    if (bundleSnp && opts.secrets?.length) {
      // SNP secrets are addressed by resource path, which a GUID-keyed secret value does not carry.
      throw new BundleError(
        'bundle-invalid',
        'an SEV-SNP import takes no secrets: add them to the profile afterwards, each under its resource path',
      );
    }
    if (!bundleSnp && secretsComing && v.body.firmware['secret-area'] === undefined) {
      extraWarnings.push(
        "secrets are registered but the bundle's firmware has no SEV secret area; QEMU could not inject them",
      );
    }
    let out: VmRegistrationResult;
    if (this.deps.owner) {
      out = await this.deps.owner.registerVm(id, {
        ...registration,
        ...(opts.secrets ? { secrets: opts.secrets } : {}),
      });
    } else {
      if (opts.secrets?.length) {
        throw new BundleError('bundle-invalid', 'secrets can only be imported through the owner service');
      }
      const previous = this.deps.profiles.get(id);
      const stored: VmProfile = this.deps.profiles.put({
        ...registration.fields,
        firmware: registration.firmware,
        secrets: previous?.secrets ?? [],
      });
      await this.deps.profiles.flushed();
      out = { profile: stored, warnings: [] };
    }
    try {
      this.deps.audit?.append({
        type: 'profile',
        result: 'ok',
        vmId: id,
        message: `VM ${id} imported from a bundle signed by ${v.signer.fingerprint}`,
        details: {
          signer: v.signer.fingerprint,
          rows: v.body.rows.length,
          firmware: v.body.firmware.sha256,
          scheme: v.body.scheme,
        },
      });
    } catch {
      // The log reports its own failures.
    }
    return {
      ...out,
      warnings: [...out.warnings, ...extraWarnings],
      signer: v.signer,
      rows: v.body.rows.length,
    };
  }

  private profile(vmId: string): VmProfile {
    const p = this.deps.profiles.get(vmId);
    if (!p) throw new DomainError('unknown-vm', `no VM registered as ${vmId}`);
    return p;
  }

  /** The SNP measurement state of a profile's OVMF: its layout and the OVMF hash, once per artifact. */
  private snpFirmware(p: VmProfile, overridePath: string | undefined): Promise<SnpOvmfState> {
    if (p.firmware.kind !== 'artifact') throw new Error('unreachable');
    const sha = p.firmware.sha256;
    if (overridePath === undefined) {
      const cached = this.snpFirmwares.get(sha);
      if (cached) return cached;
    }
    const path = overridePath ?? (this.deps.artifacts?.has(sha) ? this.deps.artifacts.path(sha) : undefined);
    if (path === undefined) {
      return Promise.reject(
        new BundleError(
          'bundle-export-unsupported',
          `${p.id}'s firmware ${sha} is not in the artifact store; give the file with --firmware`,
        ),
      );
    }
    const state = (async () => {
      // The file's identity first: a wrong file is refused before its pages are measured.
      const fileSha = toHex(await sha256File(path));
      if (fileSha !== sha) {
        throw new BundleError(
          'bundle-export-unsupported',
          `${path} has SHA-256 ${fileSha}, but ${p.id}'s firmware is ${sha}`,
        );
      }
      try {
        return await prepareSnpOvmf(path);
      } catch (e) {
        if (e instanceof BundleError || !(e instanceof Error)) throw e;
        throw new BundleError(
          'bundle-export-unsupported',
          `${p.id}'s firmware cannot be measured for SEV-SNP: ${e.message}`,
        );
      }
    })();
    if (overridePath === undefined) {
      state.catch(() => this.snpFirmwares.delete(sha));
      if (this.snpFirmwares.size >= 4) this.snpFirmwares.delete(this.snpFirmwares.keys().next().value!);
      this.snpFirmwares.set(sha, state);
    }
    return state;
  }

  private firmware(p: VmProfile, overridePath: string | undefined): Promise<FirmwareMeasurementState> {
    if (p.firmware.kind !== 'artifact') throw new Error('unreachable');
    const sha = p.firmware.sha256;
    if (overridePath === undefined) {
      const cached = this.firmwares.get(sha);
      if (cached) return cached;
    }
    const path = overridePath ?? (this.deps.artifacts?.has(sha) ? this.deps.artifacts.path(sha) : undefined);
    if (path === undefined) {
      return Promise.reject(
        new BundleError(
          'bundle-export-unsupported',
          `${p.id}'s firmware ${sha} is not in the artifact store; give the file with --firmware`,
        ),
      );
    }
    const state = prepareFirmware(path).then((s) => {
      if (s.info.sha256 !== sha) {
        throw new BundleError(
          'bundle-export-unsupported',
          `${path} has SHA-256 ${s.info.sha256}, but ${p.id}'s firmware is ${sha}`,
        );
      }
      return s;
    });
    if (overridePath === undefined) {
      state.catch(() => this.firmwares.delete(sha));
      if (this.firmwares.size >= 4) this.firmwares.delete(this.firmwares.keys().next().value!);
      this.firmwares.set(sha, state);
    }
    return state;
  }
}
