/**
 * The owner's SEV-SNP signing keys for host setup (docs/snp-guest.md, docs/protocol.md §14): one ID key per
 * VM (keychain account `snp/id-key/<vmId>`) and at most one author key for the owner (`snp/author-key`),
 * both ECDSA P-384, kept as PKCS#8 DER in the SecretStore and never written to disk in clear.
 *
 * One ID key per VM, not one for the owner: a profile that trusts an ID key digest accepts whatever that
 * key signed, so an owner-wide key would let VM B's image pass VM A's profile (and make every guest match
 * every such profile, which the KBS refuses as ambiguous). The author key may be owner-wide: it only
 * certifies ID keys, and a profile trusts it only when the owner says so (authorKey option).
 *
 * An ID block signs one expected measurement (one row: a vCPU count and signature) with the profile's
 * policy; createIdBlock (app/snp/id-block.ts) builds it, verifyIdBlock checks it before it is handed out.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DomainError } from '../../app/errors';
import type {
  HostSetupOptions,
  SnpHostSetupInput,
  SnpKeysResult,
  SnpMeasurementRow,
} from '../../app/host-setup';
import type { VmProfile } from '../../app/profile';
import { fromHex, toHex, wipe } from '../../app/sev/bytes';
import { createIdBlock, snpKeyDigest, verifyIdBlock } from '../../app/snp/id-block';
import type { AuditLog } from './audit-log';
import type { ExpectedSnpMeasurement } from './expected-snp-measurements';
import type { ProfileStore } from './profile-store';
import type { SecretStore } from './secret-store';

/** The keychain account of a VM's ID key. */
export function idKeyAccount(vmId: string): string {
  return `snp/id-key/${vmId}`;
}
/** The keychain account of the owner's author key. */
export const AUTHOR_KEY_ACCOUNT = 'snp/author-key';

export interface SnpIdKeyServiceDeps {
  profiles: ProfileStore;
  secrets: SecretStore;
  audit?: Pick<AuditLog, 'appendDurable'>;
  /** The profile's expected measurements with their inputs (computed from the firmware, or precomputed). */
  measurements: (profile: VmProfile) => Promise<SnpMeasurementRow[]>;
}

export class SnpIdKeyService {
  constructor(private readonly deps: SnpIdKeyServiceDeps) {}

  /** The digest of a stored key, or undefined when there is none. */
  async keyDigest(account: string): Promise<string | undefined> {
    const key = await this.load(account);
    return key ? toHex(snpKeyDigest(key)) : undefined;
  }

  /**
   * Creates the VM's ID key (and, with authorKey, the owner's author key) unless they exist, and adds
   * their digests to the profile's trusted digests. `replace` makes a new ID key and drops the old digest.
   */
  async ensureKeys(
    vmId: string,
    opts: { authorKey?: boolean; replace?: boolean } = {},
  ): Promise<SnpKeysResult> {
    const p = this.snpProfile(vmId);
    const account = idKeyAccount(vmId);
    const oldDigest = await this.keyDigest(account);
    let idKeyDigest = oldDigest;
    let idKeyCreated = false;
    if (idKeyDigest === undefined || opts.replace) {
      idKeyDigest = await this.generate(account);
      idKeyCreated = true;
    }
    let authorKeyDigest: string | undefined;
    let authorKeyCreated = false;
    if (opts.authorKey) {
      authorKeyDigest = await this.keyDigest(AUTHOR_KEY_ACCOUNT);
      if (authorKeyDigest === undefined) {
        authorKeyDigest = await this.generate(AUTHOR_KEY_ACCOUNT);
        authorKeyCreated = true;
      }
    }
    const snp = p.snp!;
    const idDigests = snp.trustedIdKeyDigests.filter((d) => d !== oldDigest || !idKeyCreated);
    if (!idDigests.includes(idKeyDigest)) idDigests.push(idKeyDigest);
    const authorDigests = [...snp.trustedAuthorKeyDigests];
    if (authorKeyDigest !== undefined && !authorDigests.includes(authorKeyDigest))
      authorDigests.push(authorKeyDigest);
    const changed =
      idDigests.join() !== snp.trustedIdKeyDigests.join() ||
      authorDigests.join() !== snp.trustedAuthorKeyDigests.join();
    if (changed) {
      const { createdAt: _c, updatedAt: _u, revision: _r, ...rest } = p;
      this.deps.profiles.put({
        ...rest,
        snp: { ...snp, trustedIdKeyDigests: idDigests, trustedAuthorKeyDigests: authorDigests },
      });
      await this.deps.profiles.flushed();
      await this.deps.audit?.appendDurable({
        type: 'profile',
        result: 'ok',
        vmId,
        message: `VM ${vmId} trusts its SEV-SNP ID key ${idKeyDigest.slice(0, 16)}…${authorKeyDigest ? ` and the owner's author key ${authorKeyDigest.slice(0, 16)}…` : ''}${idKeyCreated && oldDigest ? ' (ID key replaced)' : ''}`,
        details: {
          idKeyDigest,
          ...(authorKeyDigest ? { authorKeyDigest } : {}),
          ...(idKeyCreated && oldDigest ? { replacedIdKeyDigest: oldDigest } : {}),
        },
      });
    }
    return {
      vmId,
      idKeyDigest,
      idKeyCreated,
      ...(authorKeyDigest !== undefined ? { authorKeyDigest, authorKeyCreated } : {}),
      accounts: { idKey: account, ...(opts.authorKey ? { authorKey: AUTHOR_KEY_ACCOUNT } : {}) },
    };
  }

  /**
   * What the SNP host setup shows: the profile's measurement rows, its ID key digest and, when a key exists
   * and the row is known (given, or the only one), the signed ID block. Never creates a key.
   */
  async hostSetup(vmId: string, opts: HostSetupOptions = {}): Promise<SnpHostSetupInput> {
    const p = this.snpProfile(vmId);
    let rows: SnpMeasurementRow[];
    let unmeasured: string | undefined;
    try {
      rows = await this.deps.measurements(p);
    } catch (e) {
      // The fragment is still useful without an ID block; say why there is none.
      if (!(e instanceof DomainError)) throw e;
      rows = [];
      unmeasured = `the expected measurements could not be computed (${e.message})`;
    }
    const out: SnpHostSetupInput = { rows };
    const idKey = await this.load(idKeyAccount(vmId));
    let authorKey: KeyObject | undefined;
    if (idKey) out.idKeyDigest = toHex(snpKeyDigest(idKey));
    if (opts.authorKey) {
      authorKey = await this.load(AUTHOR_KEY_ACCOUNT);
      if (authorKey) out.authorKeyDigest = toHex(snpKeyDigest(authorKey));
    }
    if (opts.row !== undefined && !rows.some((r) => r.index === opts.row)) {
      throw new DomainError(
        'bad-request',
        `row ${opts.row} is not one of ${vmId}'s measurements (${rows.map((r) => r.index).join(', ') || 'none'})`,
      );
    }
    const row =
      opts.row !== undefined
        ? rows.find((r) => r.index === opts.row)
        : rows.length === 1
          ? rows[0]
          : undefined;
    if (!idKey) {
      out.idBlockMissing = 'this VM has no ID key yet (create one to sign an ID block)';
    } else if (rows.length === 0) {
      out.idBlockMissing = unmeasured ?? 'the profile has no expected measurement to sign';
    } else if (!row) {
      out.idBlockMissing = `the profile has ${rows.length} measurements: choose the row (vCPU count and signature) to sign`;
    } else if (opts.authorKey && !authorKey) {
      out.idBlockMissing = 'no author key yet (create it with the ID key)';
    } else {
      const familyId = opts.familyId ?? '0'.repeat(32);
      const imageId = opts.imageId ?? '0'.repeat(32);
      const guestSvn = opts.guestSvn ?? 0;
      const signed = createIdBlock(
        {
          launchDigest: fromHex(row.measurement),
          familyId: fromHex(familyId),
          imageId: fromHex(imageId),
          guestSvn,
          policy: BigInt(p.policy),
        },
        idKey,
        authorKey,
      );
      // Checked as the firmware will, against the key digests the profile trusts, before it is handed out.
      const verified = verifyIdBlock(signed.idBlock, signed.idAuth, {
        idKeyDigest: signed.idKeyDigest,
        ...(signed.authorKeyDigest ? { authorKeyDigest: signed.authorKeyDigest } : {}),
      });
      out.idBlock = {
        row,
        idBlockBase64: signed.idBlockBase64,
        idAuthBase64: signed.idAuthBase64,
        idKeyDigest: toHex(verified.idKeyDigest),
        ...(verified.authorKeyDigest ? { authorKeyDigest: toHex(verified.authorKeyDigest) } : {}),
        familyId,
        imageId,
        guestSvn,
      };
    }
    return out;
  }

  private snpProfile(vmId: string): VmProfile {
    const p = this.deps.profiles.get(vmId);
    if (!p) throw new DomainError('unknown-vm', `no VM profile ${vmId}`);
    if (p.scheme !== 'amd-sev-snp' || !p.snp) {
      throw new DomainError('bad-request', `${vmId} is an ${p.scheme} profile: ID blocks are for SEV-SNP`);
    }
    return p;
  }

  private async generate(account: string): Promise<string> {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
    try {
      await this.deps.secrets.set(account, der);
    } finally {
      wipe(der);
    }
    return toHex(snpKeyDigest(privateKey));
  }

  private async load(account: string): Promise<KeyObject | undefined> {
    const der = await this.deps.secrets.get(account);
    if (!der) return undefined;
    try {
      return createPrivateKey({
        key: Buffer.from(der.buffer, der.byteOffset, der.byteLength),
        format: 'der',
        type: 'pkcs8',
      });
    } catch {
      throw new DomainError('internal', `the key in keychain account ${account} is not a P-384 private key`);
    } finally {
      wipe(der);
    }
  }
}

/**
 * A profile's expected SNP measurements as rows, in the order the KBS admits them and bundles list them
 * (one per vCPU count x vCPU signature, with those inputs), or the precomputed list (inputs unknown).
 * `measured` is the one SNP measurement cache (ExpectedSnpMeasurements.detailedFor), so host setup measures
 * no OVMF of its own.
 */
export async function snpMeasurementRows(
  p: VmProfile,
  measured: (profile: VmProfile) => Promise<ExpectedSnpMeasurement[]>,
): Promise<SnpMeasurementRow[]> {
  if (p.firmware.kind === 'digests') {
    return p.firmware.launchDigests.map((measurement, index) => ({ index, measurement }));
  }
  return (await measured(p)).map((m, index) => {
    const sig = m.inputs.cpuSignature;
    return {
      index,
      measurement: m.hex,
      ...(m.inputs.vcpus !== undefined ? { cpus: m.inputs.vcpus } : {}),
      ...(sig ? { cpuSignature: { family: sig.family, model: sig.model, stepping: sig.stepping } } : {}),
    };
  });
}
