/**
 * The attestation logic, free of HTTP so the Electron main process reuses it: launch (verify the
 * platform chain, apply the owner's rules, ask the owner when the VM wants manual approval, create a
 * fresh launch session) and validate (check the reported measurement against every digest the owner's
 * profile admits, then package the VM's secrets for LAUNCH_SECRET). Deny by default: anything the owner
 * did not allow is refused with its contract code. Every step is an audit event; the host only ever
 * learns the code, the owner sees the evidence.
 */
import { createHash, timingSafeEqual, createHmac } from 'node:crypto';
import {
  ApiError,
  type ApiErrorCode,
  type LaunchRequest,
  type LaunchResponse,
  type PendingResponse,
  type ValidateRequest,
  type ValidateResponse,
} from '../../app/contract/rest';
import type { AuditEventInput } from '../../app/audit';
import type { DigestCandidate } from '../../app/contract/ipc';
import { secretAccount, type VmProfile } from '../../app/profile';
import { fromBase64, toBase64, toHex, u32le, wipe } from '../../app/sev/bytes';
import { verifyChain, VerifiedLinkCache, type ChainInput, type ChainResult } from '../../app/sev/chain';
import { isSevError } from '../../app/sev/errors';
import { measurementHasPrefix, splitMeasurementBlob } from '../../app/sev/measurement';
import { decodePolicy, policyHex } from '../../app/sev/policy';
import { anchorName, type TrustStore } from '../../app/sev/roots';
import { packageSecret, SecretTable } from '../../app/sev/secret';
import { LaunchSession } from '../../app/sev/session';
import { approvalFingerprint, type ApprovalService } from './approvals';
import { clientGroup } from './client-group';
import type { Connection, ConnectionTable } from './connections';
import { digestCandidate, profileKernelHashes } from './digest-candidates';
import type { ExpectedDigest, ExpectedDigests } from './expected-digests';
import { SecretStoreUnavailableError, type SecretStore } from './secret-store';
import { VerifiedChainCache, verifyChainCached } from './verified-chains';

/** Who sent a request. The address identifies the host for approvals; the port is only logged. */
export interface ClientInfo {
  address: string;
  port?: number;
  /** Whether the request carried a valid host token (set by the listener). */
  hostToken: boolean;
}

export function clientLabel(c: ClientInfo): string {
  return c.port === undefined
    ? c.address
    : c.address.includes(':')
      ? `[${c.address}]:${c.port}`
      : `${c.address}:${c.port}`;
}

export interface ProfileSource {
  get(id: string): VmProfile | undefined;
  list(): VmProfile[];
}

/** Where the ASK-signed CEK comes from when the chain's is unsigned (AMD's key server, cached). */
export interface CekSource {
  getCek(chipId: Uint8Array): Promise<Uint8Array>;
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
  connections: ConnectionTable;
  approvals: ApprovalService;
  digests: ExpectedDigests;
  audit: AuditSink;
  kds?: CekSource;
  /** Seconds a host should wait before repeating a pending launch (default 2). */
  retryAfterSeconds?: number;
}

export type LaunchOutcome =
  { status: 200; body: LaunchResponse } | { status: 202; body: PendingResponse; retryAfter: number };

export type LaunchTarget = { vmId: string } | { vmId?: undefined };
export type ValidateTarget = { vmId: string } | { connection: string };

/** A refusal: the code for the host, the evidence for the owner's audit event. */
class Refusal extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly hostMessage = message,
  ) {
    super(message);
  }
}

const HOST_MESSAGES: Partial<Record<ApiErrorCode, string>> = {
  'measurement-mismatch': 'the launch measurement matches no launch the owner allows',
  denied: 'the owner did not allow this',
};

function matchMeasure(
  tik: Uint8Array,
  r: ValidateRequest,
  digest: Uint8Array,
  mnonce: Uint8Array,
  measure: Uint8Array,
): boolean {
  const h = createHmac('sha256', tik);
  if (measurementHasPrefix(r['api-major'], r['api-minor'])) {
    h.update(Uint8Array.of(0x04, r['api-major'], r['api-minor'], r['build-id']));
  }
  h.update(u32le(r.policy)).update(digest).update(mnonce);
  return timingSafeEqual(h.digest(), measure);
}

/** The attestation service: launch and validate. */
export class AttestationService {
  private readonly linkCache = new VerifiedLinkCache();
  /** Whole verified chains, so a platform that launches again skips every signature check. */
  private readonly chainCache: VerifiedChainCache;
  private readonly retryAfter: number;

  constructor(private readonly deps: AttestationDeps) {
    this.retryAfter = deps.retryAfterSeconds ?? 2;
    this.chainCache = new VerifiedChainCache(deps.trust);
  }

  /** POST /v1/vm/{vmid}/launch and POST /v1/launch. Throws ApiError on refusal. */
  async launch(target: LaunchTarget, req: LaunchRequest, client: ClientInfo): Promise<LaunchOutcome> {
    const base: AuditEventInput = { type: 'launch', result: 'refused', client: clientLabel(client) };
    if (target.vmId !== undefined) base.vmId = target.vmId;
    const chipId = req['cpu-id'] !== undefined ? fromBase64(req['cpu-id']) : undefined;
    if (chipId) base.chipId = toHex(chipId);
    try {
      const { policy, candidates } = this.launchCandidates(target, req, base.chipId);
      base.details = { policy: policyHex(policy) };
      const chain = await this.verifyPlatform(req, chipId);
      base.anchor = anchorName(chain.anchor);
      (base.details as Record<string, unknown>).cekSource = chain.cekSource;

      const manual = candidates.some((p) => p.approval === 'manual');
      let approvalId: string | undefined;
      if (manual) {
        const pdh = fromBase64(req.pdh);
        const fp = approvalFingerprint(client.address, target.vmId, [
          pdh,
          fromBase64(req['cert-chain']),
          u32le(policy),
        ]);
        const { approval, created } = this.deps.approvals.request(
          fp,
          {
            vmId: target.vmId,
            client: clientLabel(client),
            chipId: base.chipId,
            anchor: base.anchor,
            policy,
            firmwareApi: { major: chain.apiMajor, minor: chain.apiMinor },
          },
          {
            client: clientGroup(client.address),
            platform: createHash('sha256').update(pdh).digest('hex'),
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
              details: { ...base.details, approval: approval.id },
            });
          }
          const retryAfter = Math.min(this.retryAfter, this.deps.approvals.secondsLeft(approval));
          return {
            status: 202,
            retryAfter,
            body: {
              status: 'pending',
              approval: approval.id,
              'retry-after': retryAfter,
              message: 'the owner has not decided yet; repeat the same request',
            },
          };
        }
        if (approval.state === 'denied') {
          throw new Refusal(
            'denied',
            approval.reason === 'timeout'
              ? 'the owner did not decide in time'
              : 'the owner denied this launch',
            { approval: approval.id, reason: approval.reason },
          );
        }
        this.deps.approvals.consume(approval);
      }

      const session = await LaunchSession.createAsync({ pdh: fromBase64(req.pdh), policy });
      let conn: Connection;
      try {
        conn = this.deps.connections.create({
          vmId: target.vmId,
          policy,
          client: clientLabel(client),
          chipId: base.chipId,
          anchor: base.anchor,
          tek: session.tek,
          tik: session.tik,
        });
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
          ...base.details,
          ...(approvalId ? { approval: approvalId } : {}),
          ...(target.vmId ? {} : { candidates: candidates.map((p) => p.id) }),
        },
      });
      return {
        status: 200,
        body: {
          connection: conn.id,
          session: session.sessionBlobBase64,
          'owner-cert': session.ownerCertBase64,
          policy,
        },
      };
    } catch (e) {
      throw this.refuse(base, e);
    }
  }

  /** POST /v1/vm/{vmid}/validate and POST /v1/connections/{id}/validate. Throws ApiError on refusal. */
  async validate(
    target: ValidateTarget,
    req: ValidateRequest,
    client: ClientInfo,
  ): Promise<ValidateResponse> {
    const base: AuditEventInput = { type: 'validate', result: 'refused', client: clientLabel(client) };
    let connId: string | undefined;
    if ('vmId' in target) {
      base.vmId = target.vmId;
      connId = this.deps.connections.latestFor(target.vmId);
      if (!connId) {
        throw this.refuse(
          base,
          new Refusal('unknown-connection', `VM ${target.vmId} has no launch connection`),
        );
      }
    } else connId = target.connection;
    base.connection = connId;
    const taken = this.deps.connections.take(connId);
    if (!taken.ok) {
      const msg =
        taken.reason === 'connection-used'
          ? 'this connection already validated (a connection releases secrets once)'
          : taken.reason === 'connection-expired'
            ? 'this connection expired; launch again'
            : 'no such connection';
      throw this.refuse(base, new Refusal(taken.reason, msg));
    }
    const conn = taken.connection;
    if (conn.vmId !== undefined) base.vmId = conn.vmId;
    if (conn.chipId !== undefined) base.chipId = conn.chipId;
    base.anchor = conn.anchor;
    const reported = {
      apiMajor: req['api-major'],
      apiMinor: req['api-minor'],
      buildId: req['build-id'],
      policy: req.policy,
      ...(req['cpu-count'] !== undefined ? { cpuCount: req['cpu-count'] } : {}),
      measurement: req.measurement,
    };
    base.details = { reported };
    try {
      if (req.policy !== conn.policy) {
        throw new Refusal(
          'policy-mismatch',
          `the reported policy ${policyHex(req.policy)} differs from the launch policy ${policyHex(conn.policy)}`,
        );
      }
      const { measure, mnonce } = splitMeasurementBlob(fromBase64(req.measurement));
      const candidates = this.validateCandidates(conn);
      const admitted: VmProfile[] = [];
      let firstRefusal: Refusal | undefined;
      for (const p of candidates) {
        const r = this.firmwareRules(p, req);
        if (r) firstRefusal ??= r;
        else admitted.push(p);
      }
      if (admitted.length === 0) {
        throw (
          firstRefusal ?? new Refusal('measurement-mismatch', 'no VM of the owner uses this launch policy')
        );
      }
      const tik = conn.tik!;
      // What the owner sees on a mismatch: each expected digest with the inputs behind it (contract shape).
      const tried: Array<DigestCandidate & { vmId: string; match?: boolean; error?: string }> = [];
      const matched: Array<{ profile: VmProfile; digest: ExpectedDigest }> = [];
      for (const p of admitted) {
        let expected: ExpectedDigest[];
        try {
          expected = await this.deps.digests.forProfile(p);
        } catch (e) {
          tried.push({
            vmId: p.id,
            launchDigest: '',
            inputs: { scheme: p.scheme, policy: p.policy },
            error: e instanceof Error ? e.message : String(e),
          });
          continue;
        }
        const kernelHashes = await profileKernelHashes(p);
        const hint = req['cpu-count'];
        // The hint orders the tries; the whole set is always checked.
        const ordered =
          hint === undefined
            ? expected
            : [...expected].sort((a, b) => Number(b.inputs.cpus === hint) - Number(a.inputs.cpus === hint));
        let hit: ExpectedDigest | undefined;
        for (const d of ordered) {
          const ok = matchMeasure(tik, req, d.digest, mnonce, measure);
          tried.push({ ...digestCandidate(p, d, kernelHashes), vmId: p.id, match: ok });
          if (ok && !hit) hit = d;
        }
        if (hit) matched.push({ profile: p, digest: hit });
      }
      if (matched.length !== 1) {
        const ambiguous = matched.length > 1;
        throw new Refusal(
          'measurement-mismatch',
          ambiguous
            ? `the measurement matches ${matched.length} VMs (${matched.map((m) => m.profile.id).join(', ')}); refusing to guess`
            : `the measurement matches none of the ${tried.length} expected launch digest(s) (each is listed with its inputs)`,
          {
            mismatch: { tried, reported },
            ...(ambiguous ? { ambiguous: matched.map((m) => m.profile.id) } : {}),
          },
        );
      }
      const { profile, digest } = matched[0]!;
      base.vmId = profile.id;
      const match = { digest: digest.hex, inputs: digest.inputs };
      this.audit({ ...base, result: 'ok', message: 'measurement verified', details: { reported, match } });
      const packet = await this.release(profile, conn, req, measure);
      // The release is on disk before the secret leaves: a crash cannot leave a released secret unaudited.
      // A log that cannot be written refuses the release (a 500 for the host).
      await this.deps.audit.appendDurable({
        ...base,
        type: 'secret-release',
        result: 'ok',
        message: `released ${profile.secrets.length} secret(s)`,
        details: { guids: profile.secrets.map((s) => s.guid), tableBytes: packet.payload.length },
      });
      return { 'secret-header': toBase64(packet.header), 'secret-table': toBase64(packet.payload) };
    } catch (e) {
      throw this.refuse(base, e);
    } finally {
      this.deps.connections.finish(conn);
    }
  }

  private launchCandidates(
    target: LaunchTarget,
    req: LaunchRequest,
    chipHex: string | undefined,
  ): { policy: number; candidates: VmProfile[] } {
    if (target.vmId !== undefined) {
      const p = this.deps.profiles.get(target.vmId);
      if (!p) throw new Refusal('unknown-vm', `no VM registered as ${target.vmId}`);
      if (req.policy !== undefined && req.policy !== p.policy) {
        throw new Refusal(
          'policy-not-allowed',
          `policy ${policyHex(req.policy)} is not the owner's policy ${policyHex(p.policy)} for ${p.id}`,
        );
      }
      this.checkScheme(req, p.policy);
      if (req.scheme !== undefined && req.scheme !== p.scheme) {
        throw new Refusal('policy-not-allowed', `scheme ${req.scheme} is not the owner's scheme ${p.scheme}`);
      }
      this.checkChip(p, chipHex);
      return { policy: p.policy, candidates: [p] };
    }
    if (req.policy === undefined) throw new ApiError('bad-request', 'policy: required on /v1/launch');
    const policy = req.policy;
    this.checkScheme(req, policy);
    const byPolicy = this.deps.profiles.list().filter((p) => p.policy === policy);
    if (byPolicy.length === 0) {
      throw new Refusal('policy-not-allowed', `no VM of the owner uses policy ${policyHex(policy)}`);
    }
    const candidates = byPolicy.filter((p) => this.chipAllowed(p, chipHex));
    if (candidates.length === 0) {
      throw new Refusal(
        'cpu-id-not-allowed',
        chipHex
          ? 'this chip is in no allow list of the VMs with this policy'
          : 'the VMs with this policy need a cpu-id',
      );
    }
    return { policy, candidates };
  }

  private checkScheme(req: LaunchRequest, policy: number): void {
    let es: boolean;
    try {
      es = decodePolicy(policy).es;
    } catch (e) {
      throw new ApiError('bad-request', `policy: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (req.scheme !== undefined && (req.scheme === 'amd-sev-es') !== es) {
      throw new ApiError('bad-request', `scheme: ${req.scheme} disagrees with the policy's ES bit`);
    }
  }

  private chipAllowed(p: VmProfile, chipHex: string | undefined): boolean {
    if (p.allowedCpuIds === undefined) return true;
    return chipHex !== undefined && p.allowedCpuIds.includes(chipHex);
  }

  private checkChip(p: VmProfile, chipHex: string | undefined): void {
    if (!this.chipAllowed(p, chipHex)) {
      throw new Refusal(
        'cpu-id-not-allowed',
        chipHex
          ? `chip ${chipHex.slice(0, 16)}... is not in ${p.id}'s allow list`
          : `${p.id} allows listed chips only: send cpu-id`,
      );
    }
  }

  private async verifyPlatform(req: LaunchRequest, chipId: Uint8Array | undefined): Promise<ChainResult> {
    const input = {
      pdh: fromBase64(req.pdh),
      certChain: fromBase64(req['cert-chain']),
      ...(req.cek !== undefined ? { cek: fromBase64(req.cek) } : {}),
    };
    try {
      return this.verifyChainOnce(input);
    } catch (e) {
      if (!isSevError(e)) throw e;
      if (e.code !== 'cek-unsigned' || input.cek !== undefined) {
        throw new Refusal('chain-not-trusted', `platform chain: ${e.message}`, { coreCode: e.code });
      }
    }
    // The chain's CEK is unsigned: fetch the signed one by chip id.
    if (!chipId || !this.deps.kds) {
      throw new Refusal(
        'chain-not-trusted',
        chipId
          ? "the chain's CEK is unsigned and no key server is configured: send the ASK-signed CEK in cek"
          : "the chain's CEK is unsigned: send the ASK-signed CEK in cek, or cpu-id so it can be fetched from AMD's key server",
        { coreCode: 'cek-unsigned' },
      );
    }
    let cek: Uint8Array;
    try {
      cek = await this.deps.kds.getCek(chipId);
    } catch (e) {
      if (isSevError(e) && e.code !== 'kds-unavailable') {
        throw new Refusal('chain-not-trusted', `key server CEK: ${e.message}`, { coreCode: e.code });
      }
      throw new Refusal(
        'kds-unavailable',
        `AMD's key server: ${e instanceof Error ? e.message : String(e)}`,
        {},
        "the signed CEK could not be fetched from AMD's key server; send it in cek",
      );
    }
    try {
      return this.verifyChainOnce({ ...input, cek });
    } catch (e) {
      if (!isSevError(e)) throw e;
      throw new Refusal('chain-not-trusted', `platform chain with the key server's CEK: ${e.message}`, {
        coreCode: e.code,
      });
    }
  }

  private verifyChainOnce(input: ChainInput): ChainResult {
    return verifyChainCached(this.chainCache, input, (i) =>
      verifyChain(i, this.deps.trust, { linkCache: this.linkCache }),
    );
  }

  private validateCandidates(conn: Connection): VmProfile[] {
    if (conn.vmId !== undefined) {
      const p = this.deps.profiles.get(conn.vmId);
      if (!p) throw new Refusal('denied', `VM ${conn.vmId} was deleted after its launch`);
      if (p.policy !== conn.policy) {
        throw new Refusal(
          'policy-mismatch',
          `VM ${p.id}'s policy changed to ${policyHex(p.policy)} after the launch`,
        );
      }
      return [p];
    }
    return this.deps.profiles
      .list()
      .filter((p) => p.policy === conn.policy && this.chipAllowed(p, conn.chipId));
  }

  /** Minimum API and build allow list; undefined when the profile admits the reported firmware. */
  private firmwareRules(p: VmProfile, r: ValidateRequest): Refusal | undefined {
    const min = p.minApi;
    if (min && (r['api-major'] < min.major || (r['api-major'] === min.major && r['api-minor'] < min.minor))) {
      return new Refusal(
        'api-too-old',
        `firmware API ${r['api-major']}.${r['api-minor']} is below ${p.id}'s minimum ${min.major}.${min.minor}`,
      );
    }
    if (p.allowedBuildIds !== undefined && !p.allowedBuildIds.includes(r['build-id'])) {
      return new Refusal(
        'build-not-allowed',
        `firmware build ${r['build-id']} is not in ${p.id}'s allowed builds`,
      );
    }
    return undefined;
  }

  private async release(
    profile: VmProfile,
    conn: Connection,
    req: ValidateRequest,
    measure: Uint8Array,
  ): Promise<{ header: Uint8Array; payload: Uint8Array }> {
    if (profile.secrets.length === 0)
      throw new Refusal('denied', `${profile.id} has no secrets to release`, { reason: 'no-secrets' });
    const table = new SecretTable();
    const values: Uint8Array[] = [];
    try {
      for (const s of profile.secrets) {
        const v = await this.deps.secrets.get(secretAccount(profile.id, s.guid));
        if (!v)
          throw new Refusal(
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
        throw new Refusal('denied', `${profile.id}'s secrets cannot be packaged: ${e.message}`, {
          reason: 'secret-table',
        });
      }
      try {
        return packageSecret({
          tek: conn.tek!,
          tik: conn.tik!,
          table: plain,
          measurement: measure,
          apiMajor: req['api-major'],
          apiMinor: req['api-minor'],
        });
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

  /** Audits a failure and turns it into the ApiError the host sees. */
  private refuse(base: AuditEventInput, e: unknown): ApiError {
    if (e instanceof Refusal) {
      this.audit({
        ...base,
        result: 'refused',
        reason: e.code,
        message: e.message,
        details: { ...base.details, ...e.details },
      });
      return new ApiError(e.code, e.code in HOST_MESSAGES ? HOST_MESSAGES[e.code]! : e.hostMessage);
    }
    if (e instanceof ApiError) {
      this.audit({ ...base, result: 'refused', reason: e.code, message: e.message });
      return e;
    }
    if (e instanceof SecretStoreUnavailableError) {
      this.audit({ ...base, result: 'error', reason: 'secret-store-unavailable', message: e.message });
      return new ApiError('secret-store-unavailable', "the owner's secret store is unavailable; try later");
    }
    if (isSevError(e)) {
      // Malformed values the schema let through (e.g. a PDH that is not a P-384 point).
      this.audit({
        ...base,
        result: 'refused',
        reason: 'bad-request',
        message: e.message,
        details: { coreCode: e.code },
      });
      return new ApiError('bad-request', e.message);
    }
    const msg = e instanceof Error ? e.message : String(e);
    this.audit({ ...base, result: 'error', reason: 'internal', message: msg });
    return new ApiError('internal', 'internal error');
  }
}
