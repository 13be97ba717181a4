/**
 * The attestation service: orchestrates the stores, approvals, connections and the audit log around the
 * decision (app/decision), free of transports so the listener and the Electron main process share it.
 *
 * launch: verify the platform chain, prove a claimed chip when an allow list needs it, apply the owner's
 * rules, ask the owner when the VM wants manual approval, create a fresh launch session.
 * validate: check the reported measurement against every digest the owner's profile admits (the one
 * measurement check, which alone creates a VerifiedLaunch), then release the VM's secrets for it.
 *
 * Deny by default. Every step is an audit event; a refusal is a DomainError whose hostMessage (all a host
 * reads) is generic, while the evidence goes to the owner's audit event only.
 */
import { createHash } from 'node:crypto';
import type { AuditEventInput } from '../../app/audit';
import { DomainError, isDomainError } from '../../app/errors';
import {
  admitFirmware,
  admitLaunch,
  afterChipProof,
  cekProvesChip,
  HOST_MESSAGES,
  matchMeasurement,
  needsChipProof,
  refusal,
  releaseSecret,
  validateCandidates,
  type Admission,
  type ChipProof,
  type DecisionCode,
  type LaunchEvidence,
  type LaunchReport,
  type LaunchTarget,
  type ProfileSource,
  type VerifiedLaunch,
} from '../../app/decision';
import { secretAccount } from '../../app/profile';
import { toHex, wipe } from '../../app/sev/bytes';
import { verifyChain, VerifiedLinkCache, type ChainInput, type ChainResult } from '../../app/sev/chain';
import { isSevError } from '../../app/sev/errors';
import { policyHex } from '../../app/sev/policy';
import { anchorName, type TrustStore } from '../../app/sev/roots';
import { SecretTable } from '../../app/sev/secret';
import { LaunchSession } from '../../app/sev/session';
import { launchApprovalFingerprint, type ApprovalService } from './approvals';
import { clientGroup } from './client-group';
import type { Connection, ConnectionStore } from './connections';
import { digestCandidate, profileKernelHashes } from './digest-candidates';
import type { ExpectedDigest, ExpectedDigests } from './expected-digests';
import { SecretStoreUnavailableError, type SecretStore } from './secret-store';
import { VerifiedChainCache, verifyChainCached } from './verified-chains';

export type { LaunchEvidence, LaunchReport, LaunchTarget, ProfileSource } from '../../app/decision';

/** Who sent a request. The address identifies the host for approvals; the port is only logged. */
export interface ClientInfo {
  address: string;
  port?: number;
  /** Whether the request carried the valid host token (set by the listener). */
  hostToken: boolean;
}

export function clientLabel(c: Pick<ClientInfo, 'address' | 'port'>): string {
  return c.port === undefined
    ? c.address
    : c.address.includes(':')
      ? `[${c.address}]:${c.port}`
      : `${c.address}:${c.port}`;
}

/** The identity a VM-path validate is bound to: the launching client's address and host-token use. */
export function clientKey(c: ClientInfo): string {
  return `${c.address}|${c.hostToken ? 'host-token' : 'no-host-token'}`;
}

/** Where the ASK-signed CEK of a chip comes from (AMD's key server, cached). */
export interface CekSource {
  getCek(chipId: Uint8Array): Promise<Uint8Array>;
}

/** CEKs the owner pinned per chip (lower-case hex); they take precedence over the key server. */
export interface PinnedCekSource {
  get(chipIdHex: string): Uint8Array | undefined;
}

export interface AuditSink {
  /** Records an event; its write may still be in flight. */
  append(e: AuditEventInput): unknown;
  /** Records an event and resolves once it is on disk; rejects when it cannot be. */
  appendDurable(e: AuditEventInput): Promise<unknown>;
}

export interface AttestationDeps {
  profiles: ProfileSource;
  secrets: SecretStore;
  trust: TrustStore;
  connections: ConnectionStore;
  approvals: ApprovalService;
  digests: ExpectedDigests;
  audit: AuditSink;
  kds?: CekSource;
  pinnedCeks?: PinnedCekSource;
  /** Seconds a host should wait before repeating a pending launch (default 2). */
  retryAfterSeconds?: number;
  /** Seconds a host should wait after a key-server outage (default 30). */
  kdsRetryAfterSeconds?: number;
}

/** A launch's answer: a session for the host's LAUNCH_START, or "the owner has not decided yet". */
export type LaunchOutcome =
  | { status: 'ready'; connection: string; session: Uint8Array; ownerCert: Uint8Array; policy: number }
  | { status: 'pending'; approval: string; retryAfter: number; message: string };

/** The LAUNCH_SECRET packet: header (flags || IV || MAC) and the encrypted secret table. */
export interface ValidateOutcome {
  header: Uint8Array;
  payload: Uint8Array;
}

export type ValidateTarget = { vmId: string } | { connection: string };

/** The attestation service: launch and validate. */
export class AttestationService {
  private readonly linkCache = new VerifiedLinkCache();
  /** Whole verified chains, so a platform that launches again skips every signature check. */
  private readonly chainCache: VerifiedChainCache;
  private readonly retryAfter: number;
  private readonly kdsRetryAfter: number;

  constructor(private readonly deps: AttestationDeps) {
    this.retryAfter = deps.retryAfterSeconds ?? 2;
    this.kdsRetryAfter = deps.kdsRetryAfterSeconds ?? 30;
    this.chainCache = new VerifiedChainCache(deps.trust);
  }

  /** POST /v1/vm/{vmid}/launch and POST /v1/launch. Throws DomainError on refusal. */
  async launch(target: LaunchTarget, ev: LaunchEvidence, client: ClientInfo): Promise<LaunchOutcome> {
    const base: AuditEventInput = { type: 'launch', result: 'refused', client: clientLabel(client) };
    if (target.vmId !== undefined) base.vmId = target.vmId;
    const claimed = ev.chipId !== undefined ? toHex(ev.chipId) : undefined;
    // The chip is a claim until proven: audited as such, and base.chipId is set only once proven.
    const details: Record<string, unknown> = {};
    base.details = details;
    if (claimed) details.chip = { claimed, proven: false };
    try {
      let admission = admitLaunch(target, ev, claimed, this.deps.profiles);
      details.policy = policyHex(admission.policy);
      const proofNeeded = needsChipProof(admission.candidates);
      // On /v1/launch some candidates may admit any chip: they need no proof, so a failed one only drops
      // the allow-listed candidates (afterChipProof) instead of refusing the whole launch.
      const proofRequired = proofNeeded && admission.candidates.every((p) => p.allowedCpuIds !== undefined);
      const { chain, proof } = await this.verifyPlatform(ev, claimed, proofNeeded, proofRequired);
      base.anchor = anchorName(chain.anchor);
      details.cekSource = chain.cekSource;
      if (claimed) details.chip = { claimed, proven: proof.proven, source: proof.source };
      if (proof.proven) base.chipId = claimed;
      admission = afterChipProof(admission, proof);
      const { policy, candidates } = admission;

      const manual = candidates.some((p) => p.approval === 'manual');
      let approvalId: string | undefined;
      if (manual) {
        const fp = launchApprovalFingerprint(client.address, target.vmId, {
          pdh: ev.pdh,
          certChain: ev.certChain,
          policy,
          chipId: ev.chipId,
          cek: ev.cek,
        });
        const { approval, created } = this.deps.approvals.request(
          fp,
          {
            vmId: target.vmId,
            client: clientLabel(client),
            chipId: base.chipId,
            anchor: base.anchor,
            policy,
            firmwareApi: { major: chain.apiMajor, minor: chain.apiMinor },
            // For the owner's card: whether the claimed chip id was proven (absent when not checked).
            ...(claimed && proof.source !== 'none' ? { chipProven: proof.proven } : {}),
          },
          {
            client: clientGroup(client.address),
            platform: createHash('sha256').update(ev.pdh).digest('hex'),
            authenticated: client.hostToken === true,
          },
        );
        approvalId = approval.id;
        if (approval.state === 'pending') {
          if (created) {
            this.audit({
              ...base,
              result: 'pending',
              reason: 'approval-required',
              message: `waiting for the owner to approve (approval ${approval.id})`,
              details: { ...details, approval: approval.id },
            });
          }
          return {
            status: 'pending',
            approval: approval.id,
            retryAfter: Math.min(this.retryAfter, this.deps.approvals.secondsLeft(approval)),
            message: 'the owner has not decided yet; repeat the same request',
          };
        }
        if (approval.state === 'denied') {
          throw refusal(
            'denied',
            approval.reason === 'timeout'
              ? 'the owner did not decide in time'
              : 'the owner denied this launch',
            { approval: approval.id, reason: approval.reason },
          );
        }
        // One launch per approval, across replicas too (the database decides who spends it).
        if (!(await this.deps.approvals.consumeOnce(approval))) {
          throw refusal(
            'denied',
            'this approval was already spent by another launch; repeat the request to ask the owner again',
            { approval: approval.id },
          );
        }
      }

      const session = await LaunchSession.createAsync({ pdh: ev.pdh, policy });
      let conn: Connection;
      let answer: { session: Uint8Array; ownerCert: Uint8Array };
      try {
        conn = await this.deps.connections.create({
          vmId: target.vmId,
          profileRevision: target.vmId !== undefined ? candidates[0]!.revision : undefined,
          policy,
          client: clientLabel(client),
          clientKey: clientKey(client),
          chipId: base.chipId,
          anchor: base.anchor,
          tek: session.tek,
          tik: session.tik,
        });
        answer = {
          session: Uint8Array.from(session.sessionBlob),
          ownerCert: Uint8Array.from(session.ownerCert),
        };
      } finally {
        session.wipe();
      }
      this.audit({
        ...base,
        result: 'ok',
        connection: conn.id,
        message: target.vmId
          ? 'launch session created'
          : `launch session created for ${candidates.length} candidate VM(s)`,
        details: {
          ...details,
          ...(approvalId ? { approval: approvalId } : {}),
          ...(target.vmId ? {} : { candidates: candidates.map((p) => p.id) }),
        },
      });
      return { status: 'ready', connection: conn.id, ...answer, policy };
    } catch (e) {
      throw this.refuse(base, e);
    }
  }

  /** POST /v1/vm/{vmid}/validate and POST /v1/connections/{id}/validate. Throws DomainError on refusal. */
  async validate(target: ValidateTarget, report: LaunchReport, client: ClientInfo): Promise<ValidateOutcome> {
    const base: AuditEventInput = { type: 'validate', result: 'refused', client: clientLabel(client) };
    let connId: string | undefined;
    if ('vmId' in target) {
      base.vmId = target.vmId;
      // Only a connection this client launched: another client's validate never spends or shadows it.
      try {
        connId = await this.deps.connections.latestFor(target.vmId, clientKey(client));
      } catch (e) {
        throw this.refuse(base, e);
      }
      if (!connId) {
        throw this.refuse(
          base,
          refusal('unknown-connection', `VM ${target.vmId} has no launch connection from this client`),
        );
      }
    } else connId = target.connection;
    base.connection = connId;
    let taken: Awaited<ReturnType<ConnectionStore['take']>>;
    try {
      taken = await this.deps.connections.take(connId);
    } catch (e) {
      throw this.refuse(base, e);
    }
    if (!taken.ok) {
      const msg =
        taken.reason === 'connection-used'
          ? 'this connection already validated (a connection releases secrets once)'
          : taken.reason === 'connection-expired'
            ? 'this connection expired; launch again'
            : 'no such connection';
      throw this.refuse(base, refusal(taken.reason, msg));
    }
    const conn = taken.connection;
    if (conn.vmId !== undefined) base.vmId = conn.vmId;
    if (conn.chipId !== undefined) base.chipId = conn.chipId;
    base.anchor = conn.anchor;
    const reported = {
      apiMajor: report.apiMajor,
      apiMinor: report.apiMinor,
      buildId: report.buildId,
      policy: report.policy,
      ...(report.cpuCount !== undefined ? { cpuCount: report.cpuCount } : {}),
      measurement: Buffer.from(report.measurement).toString('base64'),
    };
    base.details = { reported };
    let verified: VerifiedLaunch<ExpectedDigest> | undefined;
    try {
      if (report.policy !== conn.policy) {
        throw refusal(
          'policy-mismatch',
          `the reported policy ${policyHex(report.policy)} differs from the launch policy ${policyHex(conn.policy)}`,
        );
      }
      const admitted = admitFirmware(validateCandidates(conn, this.deps.profiles), report);
      verified = await this.checkMeasurement(conn, report, admitted, reported);
      const profile = verified.profile;
      base.vmId = profile.id;
      const match = { digest: verified.digest.hex, inputs: verified.digest.inputs };
      this.audit({ ...base, result: 'ok', message: 'measurement verified', details: { reported, match } });
      const packet = await this.release(verified);
      // The release is on disk before the secret leaves: a crash cannot leave a released secret unaudited.
      // A log that cannot be written refuses the release (a 500 for the host).
      await this.deps.audit.appendDurable({
        ...base,
        type: 'secret-release',
        result: 'ok',
        message: `released ${profile.secrets.length} secret(s)`,
        details: { guids: profile.secrets.map((s) => s.guid), tableBytes: packet.payload.length },
      });
      return packet;
    } catch (e) {
      throw this.refuse(base, e);
    } finally {
      verified?.discard();
      await this.deps.connections.finish(conn);
    }
  }

  /** Prove the claimed chip (if any) and verify the chain, fetching the signed CEK when needed. */
  private async verifyPlatform(
    ev: LaunchEvidence,
    claimed: string | undefined,
    proofNeeded: boolean,
    proofRequired = proofNeeded,
  ): Promise<{ chain: ChainResult; proof: ChipProof }> {
    const input: ChainInput = {
      pdh: ev.pdh,
      certChain: ev.certChain,
      ...(ev.cek !== undefined ? { cek: ev.cek } : {}),
    };
    const none: ChipProof = { claimed, proven: false, source: claimed ? 'unproven' : 'none' };
    try {
      const chain = this.verifyChainOnce(input);
      if (!claimed || !proofNeeded) return { chain, proof: none };
      // The host's cek proves nothing about its cpu-id: compare with the reference for the claimed chip.
      let ref: { cek: Uint8Array; source: 'pinned' | 'key-server' };
      try {
        ref = await this.referenceCek(ev.chipId!, claimed);
      } catch (e) {
        if (proofRequired || !isDomainError(e)) throw e;
        return { chain, proof: { ...none, why: `no reference CEK for that chip (${e.code}: ${e.message})` } };
      }
      return cekProvesChip(ev.certChain, ref.cek)
        ? { chain, proof: { claimed, proven: true, source: ref.source } }
        : {
            chain,
            proof: {
              ...none,
              why: `the chain's CEK is not the ${ref.source === 'pinned' ? 'pinned' : "key server's"} CEK for that chip`,
            },
          };
    } catch (e) {
      if (!isSevError(e)) throw e;
      if (e.code !== 'cek-unsigned' || input.cek !== undefined) {
        throw refusal('chain-not-trusted', `platform chain: ${e.message}`, { coreCode: e.code });
      }
    }
    // The chain's CEK is unsigned: the signed one comes from a pin or the key server, by chip id.
    if (!ev.chipId || !claimed) {
      const m =
        "the chain's CEK is unsigned: send the ASK-signed CEK in cek, or cpu-id so it can be fetched from AMD's key server";
      throw refusal('chain-not-trusted', m, { coreCode: 'cek-unsigned' }, { hostMessage: m });
    }
    const ref = await this.referenceCek(ev.chipId!, claimed!);
    try {
      const chain = this.verifyChainOnce({ ...input, cek: ref.cek });
      // verifyChain required the reference CEK to hold the chain CEK's key: the claimed chip is proven.
      return { chain, proof: { claimed, proven: true, source: ref.source } };
    } catch (e) {
      if (!isSevError(e)) throw e;
      if (e.code === 'bad-key') {
        throw refusal(
          'cpu-id-unproven',
          `the chain's CEK is not the ${ref.source === 'pinned' ? 'pinned' : "key server's"} CEK for the claimed chip ${claimed!.slice(0, 16)}...: ${e.message}`,
          { coreCode: e.code, chip: { claimed, proven: false } },
        );
      }
      throw refusal('chain-not-trusted', `platform chain with the ${ref.source} CEK: ${e.message}`, {
        coreCode: e.code,
      });
    }
  }

  /** The CEK the claimed chip must have: the owner's pin first, else AMD's key server (cached). */
  private async referenceCek(
    chipId: Uint8Array,
    hex: string,
  ): Promise<{ cek: Uint8Array; source: 'pinned' | 'key-server' }> {
    const pinned = this.deps.pinnedCeks?.get(hex);
    if (pinned) return { cek: pinned, source: 'pinned' };
    if (!this.deps.kds) {
      throw refusal(
        'kds-unavailable',
        'no key server is configured and no CEK is pinned for this chip',
        {},
        { retryAfterSeconds: this.kdsRetryAfter },
      );
    }
    try {
      return { cek: await this.deps.kds.getCek(chipId), source: 'key-server' };
    } catch (e) {
      if (isSevError(e) && e.code === 'cek-unknown-chip') {
        throw refusal('cek-unknown-chip', `key server CEK: ${e.message}`, { coreCode: e.code });
      }
      if (isSevError(e) && e.code !== 'kds-unavailable') {
        throw refusal('chain-not-trusted', `key server CEK: ${e.message}`, { coreCode: e.code });
      }
      throw refusal(
        'kds-unavailable',
        `AMD's key server: ${e instanceof Error ? e.message : String(e)}`,
        {},
        { retryAfterSeconds: this.kdsRetryAfter },
      );
    }
  }

  private verifyChainOnce(input: ChainInput): ChainResult {
    return verifyChainCached(this.chainCache, input, (i) =>
      verifyChain(i, this.deps.trust, { linkCache: this.linkCache }),
    );
  }

  /** The measurement check over every expected digest of the admitted profiles (mismatch details audited). */
  private async checkMeasurement(
    conn: Connection,
    report: LaunchReport,
    admitted: Admission['candidates'],
    reported: Record<string, unknown>,
  ): Promise<VerifiedLaunch<ExpectedDigest>> {
    const candidates: Array<{ profile: Admission['candidates'][number]; expected: ExpectedDigest[] }> = [];
    const failed: Array<Record<string, unknown>> = [];
    for (const p of admitted) {
      try {
        const expected = await this.deps.digests.forProfile(p);
        const hint = report.cpuCount;
        // The hint orders the tries; the whole set is always checked.
        const ordered =
          hint === undefined
            ? expected
            : [...expected].sort((a, b) => Number(b.inputs.cpus === hint) - Number(a.inputs.cpus === hint));
        candidates.push({ profile: p, expected: ordered });
      } catch (e) {
        failed.push({
          vmId: p.id,
          launchDigest: '',
          inputs: { scheme: p.scheme, policy: p.policy },
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    const outcome = matchMeasurement({ tek: conn.tek!, tik: conn.tik! }, report, candidates);
    if (outcome.verified) return outcome.verified;
    // What the owner sees on a mismatch: each expected digest with the inputs behind it (the UI's shape).
    const tried: Array<Record<string, unknown>> = [...failed];
    const hashes = new Map<string, Awaited<ReturnType<typeof profileKernelHashes>>>();
    for (const t of outcome.tried) {
      if (!hashes.has(t.profile.id)) hashes.set(t.profile.id, await profileKernelHashes(t.profile));
      tried.push({
        ...digestCandidate(t.profile, t.digest, hashes.get(t.profile.id)),
        vmId: t.profile.id,
        match: t.match,
      });
    }
    const ambiguous = outcome.matched.length > 1;
    throw refusal(
      'measurement-mismatch',
      ambiguous
        ? `the measurement matches ${outcome.matched.length} VMs (${outcome.matched.map((m) => m.profile.id).join(', ')}); refusing to guess`
        : `the measurement matches none of the ${tried.length} expected launch digest(s) (each is listed with its inputs)`,
      {
        mismatch: { tried, reported },
        ...(ambiguous ? { ambiguous: outcome.matched.map((m) => m.profile.id) } : {}),
      },
    );
  }

  /** Reads the verified profile's secrets and packages them for the verified launch (the only path). */
  private async release(verified: VerifiedLaunch<ExpectedDigest>): Promise<ValidateOutcome> {
    const profile = verified.profile;
    if (profile.secrets.length === 0)
      throw refusal('denied', `${profile.id} has no secrets to release`, { reason: 'no-secrets' });
    const table = new SecretTable();
    const values: Uint8Array[] = [];
    try {
      for (const s of profile.secrets) {
        const v = await this.deps.secrets.get(secretAccount(profile.id, s.guid));
        if (!v)
          throw refusal(
            'denied',
            `secret ${s.guid} of ${profile.id} is missing from the ${this.deps.secrets.kind} store`,
            { reason: 'secret-missing' },
          );
        values.push(v);
        table.add(s.guid, v);
      }
      let plain: Uint8Array;
      try {
        plain = table.build();
      } catch (e) {
        // The owner's secrets do not fit LAUNCH_SECRET (e.g. larger than 0x5000 bytes): the owner's problem, not the host's.
        if (!isSevError(e)) throw e;
        throw refusal('denied', `${profile.id}'s secrets cannot be packaged: ${e.message}`, {
          reason: 'secret-table',
        });
      }
      try {
        return releaseSecret(verified, plain);
      } finally {
        wipe(plain);
      }
    } finally {
      for (const v of values) wipe(v);
    }
  }

  /** Fire-and-forget: written with the next batch (or at close); a reply does not wait for it. */
  private audit(e: AuditEventInput): void {
    try {
      this.deps.audit.append(e);
    } catch {
      // The audit log reports its own failures; a refusal or a release must not turn into a 500 here.
    }
  }

  /** Audits a failure and turns it into the DomainError the host sees (its hostMessage is generic). */
  private refuse(base: AuditEventInput, e: unknown): DomainError {
    if (e instanceof SecretStoreUnavailableError) {
      this.audit({ ...base, result: 'error', reason: 'secret-store-unavailable', message: e.message });
      return refusal('secret-store-unavailable', e.message);
    }
    if (isSevError(e)) {
      // Malformed values the schema let through (e.g. a PDH that is not a P-384 point): the host's own data.
      this.audit({
        ...base,
        result: 'refused',
        reason: 'bad-request',
        message: e.message,
        details: { ...base.details, coreCode: e.code },
      });
      return refusal('bad-request', e.message, { coreCode: e.code }, { hostMessage: e.message });
    }
    if (isDomainError(e)) {
      this.audit({
        ...base,
        result: 'refused',
        reason: e.code,
        message: e.message,
        details: { ...base.details, ...e.details },
      });
      // A refusal of the decision carries its generic host message; anything else gets the code's.
      const host = e.code in HOST_MESSAGES ? e.hostMessage : HOST_MESSAGES.internal;
      return new DomainError(e.code, e.message, {
        hostMessage: host,
        details: e.details,
        ...(e.retryAfterSeconds !== undefined ? { retryAfterSeconds: e.retryAfterSeconds } : {}),
      });
    }
    const msg = e instanceof Error ? e.message : String(e);
    this.audit({ ...base, result: 'error', reason: 'internal', message: msg });
    return refusal('internal', msg);
  }
}

export type { DecisionCode };
