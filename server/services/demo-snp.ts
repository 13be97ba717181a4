/**
 * The demo's SEV-SNP guest unlocking its disk: the profile `demo-snp` (manual approval, a demo LUKS
 * passphrase under the resource `demo/luks/disk`) and a simulated SNP guest (app/sim: SimulatedSnpFirmware
 * + SnpGuestClient) that attests to the RUNNING listener over real HTTP(S) and fetches its key with Trustee's
 * RCAR protocol, as guest-components would at boot: POST /kbs/v0/auth, POST /kbs/v0/attest (waiting while the
 * owner decides), GET /kbs/v0/resource/demo/luks/disk, the JWE decrypted with the guest's own key.
 *
 * Trust: the simulated chip's ARK/ASK (generated in this process, never leaving it) is added to the
 * service's SNP trust store as an extra root set labelled DEMO_SNP_ANCHOR_LABEL, with its own CRL, so every
 * audit event of a demo attestation names it; AMD's pinned roots keep deciding for every other guest. The
 * demo's VCEK comes with the evidence (the host's certificate table), so no key server is asked.
 */
import * as fs from 'node:fs';
import type { DemoRunResult } from '../../app/demo';
import type { AuditEventInput } from '../../app/audit';
import { LUKS_PASSPHRASE_GUID, secretAccount, type SecretRef, type VmProfile } from '../../app/profile';
import type { SnpTrustStore } from '../../app/snp/roots';
import { sha384, SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import { KbsClientError, SnpGuestClient } from '../../app/sim/snp-guest';
import { wipe } from '../../app/sev/bytes';
import type { ApprovalService } from './approvals';
import { DemoError, loopbackUrl } from './demo-host';
import type { OwnerService } from './owner-service';
import type { ProfileStore } from './profile-store';
import type { SecretService } from './secret-service';
import { canKeepInMemory, SecretStoreUnavailableError } from './secret-store';

export const DEMO_SNP_VM_ID = 'demo-snp';
export const DEMO_SNP_PROFILE_NAME = 'Demo SNP VM (simulated SEV-SNP platform; not a real secret)';
/** How the simulated chip's roots are labelled in the trust store, audit events and approvals. */
export const DEMO_SNP_ANCHOR_LABEL = 'demo: simulated SEV-SNP platform (not AMD)';
export const DEMO_SNP_RESOURCE = 'demo/luks/disk';
export const DEMO_SNP_PASSPHRASE = 'demo SNP passphrase — not a real secret';
/**
 * The demo guest's launch measurement: the SHA-384 of a fixed label. The simulated firmware measures no
 * image, so the demo profile expects this value (a real profile expects its firmware's measurement).
 */
export const DEMO_SNP_MEASUREMENT_HEX = Buffer.from(sha384('SEV Attest demo SEV-SNP guest')).toString('hex');
/** Guest policy 0x30000: reserved bit 17, SMT allowed; debugging off. */
const DEMO_SNP_POLICY = 0x30000;

/** What the SNP demo needs of the running service (server/serve/serve.ts RunningService). */
export interface DemoSnpServiceView {
  url: string;
  tlsCertFile?: string | undefined;
  profiles: Pick<ProfileStore, 'get' | 'put' | 'flushed'>;
  snpTrust: SnpTrustStore;
  secrets: Pick<SecretService, 'storeValues' | 'has'>;
  /** The raw store: the demo keeps its passphrase in memory through it when no keychain takes it. */
  secretStore?: object;
  owner: Pick<OwnerService, 'saveProfile'>;
  approvals: Pick<ApprovalService, 'subscribe'>;
  audit: { append(e: AuditEventInput): unknown };
}

/**
 * The demo SNP profile, created on first use and reused after (its passphrase put back when the store lost
 * it). A profile `demo-snp` the owner made is run as it is.
 */
export async function ensureDemoSnpProfile(
  service: DemoSnpServiceView,
): Promise<{ profile: VmProfile; created: boolean }> {
  const existing = service.profiles.get(DEMO_SNP_VM_ID);
  if (existing) {
    if (existing.name !== DEMO_SNP_PROFILE_NAME) return { profile: existing, created: false };
    const stored = await service.secrets.has(DEMO_SNP_VM_ID, LUKS_PASSPHRASE_GUID).catch((e: unknown) => {
      if (e instanceof SecretStoreUnavailableError) return false;
      throw e;
    });
    return { profile: stored ? existing : await storeDemoSnpSecret(service, existing), created: false };
  }
  const { profile } = await service.owner.saveProfile({
    id: DEMO_SNP_VM_ID,
    name: DEMO_SNP_PROFILE_NAME,
    scheme: 'amd-sev-snp',
    policy: DEMO_SNP_POLICY,
    cpuCounts: [1],
    cpuSignatures: [],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'digests', launchDigests: [DEMO_SNP_MEASUREMENT_HEX] },
    approval: 'manual',
    secrets: [],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      vmpl: 0,
      minimumReportVersion: 3,
    },
  });
  return { profile: await storeDemoSnpSecret(service, profile), created: true };
}

/** The demo passphrase's value (audited; in memory when no keychain takes it) and its reference. */
async function storeDemoSnpSecret(service: DemoSnpServiceView, profile: VmProfile): Promise<VmProfile> {
  let label = 'demo SNP passphrase';
  try {
    await service.secrets.storeValues(
      DEMO_SNP_VM_ID,
      [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', label, value: demoValue() }],
      { via: 'demo' },
    );
  } catch (e) {
    const store = service.secretStore;
    if (!(e instanceof SecretStoreUnavailableError) || !store || !canKeepInMemory(store)) throw e;
    await store.setInMemory(secretAccount(DEMO_SNP_VM_ID, LUKS_PASSPHRASE_GUID), demoValue());
    label = 'demo SNP passphrase (kept in memory: no OS keychain)';
  }
  const ref: SecretRef = {
    guid: LUKS_PASSPHRASE_GUID,
    kind: 'luks-passphrase',
    label,
    resource: DEMO_SNP_RESOURCE,
  };
  const stored = service.profiles.put({
    ...profile,
    secrets: [...profile.secrets.filter((s) => s.guid !== LUKS_PASSPHRASE_GUID), ref],
  });
  await service.profiles.flushed();
  return stored;
}

const demoValue = () => new TextEncoder().encode(DEMO_SNP_PASSPHRASE);

export interface DemoSnpOptions {
  service: DemoSnpServiceView;
  /** Longest wait for the owner's decision (default 10 minutes). */
  maxWaitMs?: number;
  /** RSA size of the simulated roots (default 2048 for a quick start; AMD's are 4096). */
  rsaModulusBits?: 2048 | 4096;
}

/** Runs the simulated SNP guest; one simulated chip per runner, trusted on first use. */
export class DemoSnpRunner {
  private chip: Promise<SimulatedSnpFirmware> | undefined;

  constructor(private readonly opts: DemoSnpOptions) {}

  /** The simulated chip, created and trusted (as an extra, labelled root set) on first use. */
  simulatedChip(): Promise<SimulatedSnpFirmware> {
    this.chip ??= SimulatedSnpFirmware.create({
      product: 'Milan',
      rsaModulusBits: this.opts.rsaModulusBits ?? 2048,
    }).then((fw) => {
      const svc = this.opts.service;
      svc.snpTrust.addExtra({ set: fw.rootSet(), label: DEMO_SNP_ANCHOR_LABEL, crl: fw.roots.crl });
      svc.audit.append({
        type: 'listener',
        result: 'info',
        anchor: DEMO_SNP_ANCHOR_LABEL,
        message: `demo SNP guest: its simulated chip's roots are trusted as an extra root set labelled '${DEMO_SNP_ANCHOR_LABEL}' (not AMD's; its keys exist only in this process)`,
        details: { demo: true, product: fw.product, chipId: Buffer.from(fw.chipId).toString('hex') },
      });
      return fw;
    });
    this.chip.catch(() => (this.chip = undefined));
    return this.chip;
  }

  /** One boot of the SNP guest `vmId`: attest, wait for the owner, fetch and decrypt its disk key. */
  async run(vmId: string): Promise<DemoRunResult> {
    const svc = this.opts.service;
    const profile = svc.profiles.get(vmId);
    if (!profile) throw new DemoError('unknown-vm', `no VM profile ${vmId}`);
    if (profile.scheme !== 'amd-sev-snp' || !profile.snp) {
      throw new DemoError('demo-not-possible', `VM ${vmId} is not an SEV-SNP profile`);
    }
    if (profile.firmware.kind !== 'digests' || profile.firmware.launchDigests.length === 0) {
      throw new DemoError(
        'demo-not-possible',
        `VM ${vmId} names no precomputed measurement: the simulated SNP guest launches with one of the profile's measurements`,
      );
    }
    const secret =
      profile.secrets.find((s) => s.guid === LUKS_PASSPHRASE_GUID && s.resource) ??
      profile.secrets.find((s) => s.resource);
    if (!secret?.resource) throw new DemoError('demo-not-possible', `VM ${vmId} holds no resource to fetch`);
    const fw = await this.simulatedChip();
    const guest = fw.launch({
      measurement: new Uint8Array(Buffer.from(profile.firmware.launchDigests[0]!, 'hex')),
      policy: BigInt(profile.policy),
      ...(profile.snp.hostData ? { hostData: new Uint8Array(Buffer.from(profile.snp.hostData, 'hex')) } : {}),
      hostCertificates: 'vcek',
    });
    const tlsFile = svc.tlsCertFile;
    const client = new SnpGuestClient({
      baseUrl: loopbackUrl(svc.url),
      guest,
      // The listener's self-signed certificate is the guest's only CA: verified, not skipped.
      ...(tlsFile ? { tls: { ca: fs.readFileSync(tlsFile) } } : {}),
      handshakeAttempts: 1,
    });
    const finish = (r: DemoRunResult): DemoRunResult => {
      const result = { ...r, vmId };
      svc.audit.append({
        type: 'listener',
        result: r.outcome === 'released' ? 'ok' : r.outcome === 'refused' ? 'refused' : 'error',
        vmId,
        anchor: DEMO_SNP_ANCHOR_LABEL,
        message: `demo SNP guest: ${r.message}`,
        details: { demo: true, outcome: r.outcome, ...(r.code ? { code: r.code } : {}) },
      });
      return result;
    };
    try {
      const maxWait = this.opts.maxWaitMs ?? 600_000;
      const started = Date.now();
      // The attest waits (long poll) for the owner; past the service's wait it answers "not decided yet",
      // and the guest asks again, as guest-components' handshake retries do.
      for (;;) {
        try {
          await client.handshake();
          break;
        } catch (e) {
          const pending = e instanceof KbsClientError && /not decided/.test(e.detail);
          if (!pending || Date.now() - started > maxWait) throw e;
        }
      }
      const value = await client.getResource(secret.resource);
      const bytes = value.length;
      wipe(value);
      return finish({
        outcome: 'released',
        releasedGuids: [secret.guid],
        message: `the simulated SEV-SNP guest attested, fetched ${secret.resource} and decrypted its disk key (${bytes} bytes) with its own key`,
      });
    } catch (e) {
      if (e instanceof KbsClientError && e.status !== undefined) {
        return finish({
          outcome: 'refused',
          code: e.kind ?? `http-${e.status}`,
          message: `the listener refused the ${e.stage}: ${e.detail.replace(/\.$/, '')}`,
        });
      }
      return finish({ outcome: 'error', message: `the simulated SNP guest failed: ${(e as Error).message}` });
    } finally {
      client.close();
    }
  }
}
