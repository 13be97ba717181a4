/**
 * The SEV-SNP attestation service speaking Trustee KBS's RCAR protocol (docs/protocol.md §15,
 * docs/api.md "SEV-SNP guests"), free of transports: server/listener/kbs-routes.ts maps HTTP to it.
 *
 * auth: a session in the session store (memory, or the shared database with serve --database:
 * ./kbs-sessions.ts; cookie id = 32 random bytes base64url, nonce = base64 of 32 random bytes), capped
 * per client group and in total so a flood of /auth cannot exhaust memory (429 + Retry-After).
 * attest: once per session. The nonce must be the session's; the report is rebuilt from the guest's JSON,
 * verified (VCEK or VLEK from the evidence, else AMD's key server; the ARK-signed CRL, refused when
 * unreachable unless the owner allowed a missing CRL; the VCEK's hwid against chip_id) and appraised by
 * every SNP profile with report_data bound to the nonce and the guest's key (app/decision/snp.ts).
 * Manual profiles wait (bounded) for the owner's decision. Then a token; the session is attested until
 * the token expires. resource: an attested, unexpired session whose profile is at the same revision, a
 * path the profile holds; the value from the SecretStore, encrypted to the guest's key by
 * releaseResource, its release durably audited before the answer.
 *
 * Every step is an audit event (type snp-attest; secret-release for a released resource, never the
 * value). A guest reads only the Trustee error kind and a generic sentence; the owner's audit gets the
 * rule, the expected and the reported values.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditEventInput } from '../../app/audit';
import {
  decideSnpGuest,
  releaseResource,
  type SnpCandidate,
  type VerifiedSnpGuest,
} from '../../app/decision/snp';
import { DomainError, isDomainError, messageOf } from '../../app/errors';
import type { FlattenedJwe } from '../../app/kbs/jwe';
import { parseTeePubkey, type TeePublicKey } from '../../app/kbs/jwk';
import type { KbsTokenIssuer } from '../../app/kbs/jwt';
import { isKbsProtocolError, type KbsErrorKind } from '../../app/kbs/errors';
import { reportBytesFromKbsJson } from '../../app/kbs/report-json';
import { kbsReportData } from '../../app/kbs/runtime-data';
import { secretAccount, secretForResource, type VmProfile } from '../../app/profile';
import { wipe } from '../../app/sev/bytes';
import { parseSnpCert, productOfKey } from '../../app/snp/chain';
import { isSnpError, SnpError } from '../../app/snp/errors';
import { parseReport, productFromCpuid } from '../../app/snp/report';
import type { SnpProduct, SnpTrustStore } from '../../app/snp/roots';
import { decodeTcb, formatTcb, type TcbParts } from '../../app/snp/tcb';
import { verifyReport, type VerifiedSnpReport } from '../../app/snp/verify';
import { approvalFingerprint, type Approval, type ApprovalService } from './approvals';
import { clientLabel, type AuditSink, type ClientInfo } from './attestation';
import { clientGroup } from './client-group';
import { MemoryKbsSessionStore, type KbsSession, type KbsSessionStore } from './kbs-sessions';
import { SecretStoreUnavailableError, type SecretStore } from './secret-store';

/** Where VCEKs and CRLs come from (app/snp/kds.ts SnpKdsClient: offline store, cache, AMD's key server). */
export interface SnpKeySource {
  getVcek(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): Promise<{ der: Uint8Array }>;
  getCrl(product: SnpProduct, now?: Date): Promise<{ der: Uint8Array }>;
}

/** The launch measurements each SNP profile admits (server/services/expected-snp-measurements.ts). */
export interface SnpMeasurementSource {
  forProfile(p: VmProfile): Promise<string[]>;
}

export interface KbsProfileSource {
  get(id: string): VmProfile | undefined;
  list(): VmProfile[];
}

export interface KbsServiceDeps {
  profiles: KbsProfileSource;
  secrets: SecretStore;
  approvals: ApprovalService;
  audit: AuditSink;
  tokens: Pick<KbsTokenIssuer, 'issue'>;
  measurements: SnpMeasurementSource;
  /** VCEKs and CRLs; absent: only evidence with its own VCEK/VLEK verifies, and no CRL can be had. */
  keys?: SnpKeySource;
  /** The SNP roots (default: AMD's pinned ones). */
  trust?: SnpTrustStore;
  /** Whether the owner accepts a report when the CRL cannot be fetched (default: no). */
  allowMissingCrl?: () => boolean;
  /** How long an attest waits for the owner's decision (seconds, default 120). */
  approvalWaitSeconds?: number | (() => number);
  /** How long a challenge stays valid (seconds, default 300). */
  challengeTtlSeconds?: number;
  /** Sessions at once in all (default 10000) and per client group (default 64). */
  maxSessions?: number;
  maxSessionsPerClient?: number;
  /** Where sessions live (default: this process's memory). */
  sessions?: KbsSessionStore;
  now?: () => number;
}

/** What /auth returns: the cookie value, the challenge and when the challenge expires (ms). */
export interface KbsChallengeOutcome {
  sessionId: string;
  nonce: string;
  expiresAt: number;
}

/** The attest request as a domain value (the route maps the contract body to it). */
export interface KbsAttestInput {
  nonce: string;
  /** The JWK as received (its canonical JSON is part of report_data). */
  teePubkey: Record<string, unknown>;
  /** tee-evidence.additional_evidence, hashed into report_data as received. */
  additionalEvidence: string;
  /** The report in virtee/sev's JSON form (u64 above 2^53 as bigint). */
  report: unknown;
  /** The extended report's certificates ({cert_type, data}); only VCEK and VLEK entries are used. */
  certChain: ReadonlyArray<{ certType: string; data: Uint8Array }> | undefined;
}

export interface KbsAttestOutcome {
  token: string;
  /** When the token (and the session) expire, ms since the epoch. */
  expiresAt: number;
}

/**
 * A refusal: `kind` is the Trustee error kind the guest reads, `guestDetail` the only sentence it gets;
 * `message` and `details` are for the owner's audit event.
 */
export class KbsRefusal extends Error {
  constructor(
    /** Trustee's kinds, plus ours: 429 TooManyRequests, 503 ServiceUnavailable, 500 Internal. */
    readonly kind: KbsErrorKind | 'TooManyRequests' | 'ServiceUnavailable' | 'Internal',
    readonly reason: string,
    message: string,
    readonly guestDetail: string,
    readonly details: Record<string, unknown> = {},
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'KbsRefusal';
  }
}

/** What a guest reads for each refusal reason (nothing of the owner's rules). */
const GUEST_DETAIL: Record<string, string> = {
  'rate-limited': 'too many KBS sessions are open; try later',
  'no-session': 'no KBS session: send the kbs-session-id cookie from /kbs/v0/auth',
  'unknown-session': 'unknown or expired KBS session; start again at /kbs/v0/auth',
  'session-undecryptable': 'unknown or expired KBS session; start again at /kbs/v0/auth',
  'database-unavailable': 'the service is temporarily unavailable; try later',
  'session-expired': 'the KBS session expired; start again at /kbs/v0/auth',
  'session-used': 'this KBS session already attested (a session attests once); start again at /kbs/v0/auth',
  'not-attested': 'this KBS session has not attested; attest first',
  'nonce-mismatch': "runtime-data.nonce is not this session's nonce",
  'bad-tee-pubkey': 'runtime-data.tee-pubkey is not a supported public key',
  'bad-evidence': 'the SNP evidence is malformed',
  'no-key': 'the report could not be verified',
  'kds-unavailable': "the report's signing key or revocation list could not be fetched; try later",
  'report-invalid': 'the attestation report did not verify',
  'not-accepted': 'the owner does not accept this guest',
  denied: 'the owner denied this attestation',
  'approval-pending': 'the owner has not decided; try again',
  'profile-changed': "the owner changed this guest's profile; attest again",
  'resource-not-allowed': 'this guest may not read that resource',
  'secret-missing': 'the resource is not available',
  'secret-store-unavailable': "the owner's secret store is unavailable; try later",
  'audit-unavailable': "the owner's audit log cannot record the release; try later",
  internal: 'internal error',
};

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function refuse(
  kind: KbsRefusal['kind'],
  reason: string,
  message: string,
  details: Record<string, unknown> = {},
  retryAfterSeconds?: number,
): KbsRefusal {
  return new KbsRefusal(
    kind,
    reason,
    message,
    GUEST_DETAIL[reason] ?? GUEST_DETAIL.internal!,
    details,
    retryAfterSeconds,
  );
}

/** Constant-time string equality (the nonce is a capability). */
function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The KBS service: auth, attest, resource. */
export class KbsService {
  private readonly sessions: KbsSessionStore;
  private readonly now: () => number;
  private readonly challengeTtlMs: number;
  private readonly maxSessions: number;
  private readonly maxPerClient: number;
  private readonly approvalWait: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: KbsServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.sessions = deps.sessions ?? new MemoryKbsSessionStore(this.now);
    this.challengeTtlMs = (deps.challengeTtlSeconds ?? 300) * 1000;
    this.maxSessions = deps.maxSessions ?? 10_000;
    this.maxPerClient = deps.maxSessionsPerClient ?? 64;
    const w = deps.approvalWaitSeconds ?? 120;
    this.approvalWait = typeof w === 'function' ? w : () => w;
    this.sweepTimer = setInterval(() => {
      this.sessions.sweep(this.now()).catch(() => {
        // The next sweep (or a cap check) tries again; an unreachable database is reported by requests.
      });
    }, 60_000);
    this.sweepTimer.unref();
  }

  /** Sessions held now (tests, health). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Stops the sweep timer and the session store (shutdown). */
  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sessions.close();
  }

  /** POST /kbs/v0/auth: a new session and its challenge. Throws KbsRefusal (429 over the caps). */
  async auth(client: ClientInfo): Promise<KbsChallengeOutcome> {
    const base: AuditEventInput = { type: 'snp-attest', result: 'refused', client: clientLabel(client) };
    const group = clientGroup(client.address);
    const now = this.now();
    const session = {
      id: randomBytes(32).toString('base64url'),
      group,
      nonce: randomBytes(32).toString('base64'),
      createdAt: now,
      expiresAt: now + this.challengeTtlMs,
    };
    let opened;
    try {
      opened = await this.sessions.open(session, {
        maxSessions: this.maxSessions,
        maxPerClient: this.maxPerClient,
      });
    } catch (e) {
      throw this.refused(base, e);
    }
    if (!opened.ok) {
      const e = refuse(
        'TooManyRequests',
        'rate-limited',
        opened.whole
          ? `KBS /auth refused: ${opened.open} sessions are open (the limit in all is ${this.maxSessions})`
          : `KBS /auth refused: ${opened.open} sessions of client group ${group} are open (the limit is ${this.maxPerClient})`,
        { group, open: opened.open },
        opened.retryAfterSeconds,
      );
      this.audit({ ...base, reason: e.reason, message: e.message, details: e.details });
      throw e;
    }
    this.audit({
      ...base,
      result: 'info',
      // Aggregated per client like refusals (audit-log.ts): opening sessions costs a caller nothing.
      reason: 'session-opened',
      message: 'KBS session opened: challenge issued',
      details: { expiresAt: new Date(session.expiresAt).toISOString() },
    });
    return { sessionId: session.id, nonce: session.nonce, expiresAt: session.expiresAt };
  }

  /** POST /kbs/v0/attest. Throws KbsRefusal. */
  async attest(
    sessionId: string | undefined,
    input: KbsAttestInput,
    client: ClientInfo,
    signal?: AbortSignal,
  ): Promise<KbsAttestOutcome> {
    const base: AuditEventInput = { type: 'snp-attest', result: 'refused', client: clientLabel(client) };
    const details: Record<string, unknown> = {};
    base.details = details;
    let session: KbsSession | undefined;
    let attesting = false;
    try {
      session = await this.take(sessionId, 'AttestationError');
      // Single use from here on: a concurrent or later attest on this session (on any replica) is refused.
      if (session.state !== 'challenged' || !(await this.sessions.beginAttest(session.id))) {
        throw refuse(
          'AttestationError',
          'session-used',
          `KBS session attested already (state ${session.state === 'challenged' ? 'attesting' : session.state})`,
        );
      }
      attesting = true;
      if (!sameText(input.nonce, session.nonce)) {
        throw refuse('AttestationError', 'nonce-mismatch', "runtime-data.nonce is not the session's nonce");
      }
      let teePubkey: TeePublicKey;
      try {
        teePubkey = parseTeePubkey(input.teePubkey);
      } catch (e) {
        throw refuse('AttestationError', 'bad-tee-pubkey', `runtime-data.tee-pubkey: ${messageOf(e)}`);
      }
      const expectedReportData = kbsReportData(input.nonce, input.teePubkey, input.additionalEvidence);
      const verified = await this.verify(input, details);
      const r = verified.report;
      base.chipId = hex(r.chipId);
      // An extra root set (the demo's simulated chip) is named by its label, never as AMD's.
      base.anchor = this.deps.trust?.extraLabel(verified.ark) ?? `amd-ark:${verified.product.toLowerCase()}`;
      Object.assign(details, {
        product: verified.product,
        signer: verified.signer,
        measurement: hex(r.measurement),
        policy: `0x${r.policy.raw.toString(16)}`,
        reportedTcb: formatTcb(verified.tcb.reported),
        vmpl: r.vmpl,
        version: r.version,
        revocation: revocationText(verified),
      });

      const decision = decideSnpGuest(verified, await this.candidates(details), {
        reportData: expectedReportData,
        teePubkey,
      });
      details.profiles = decision.verdicts.map((v) => ({
        vmId: v.profileId,
        accepted: v.accepted,
        refusals: v.refusals.map((x) => ({ rule: x.field, expected: x.expected, reported: x.reported })),
      }));
      if (!decision.guest) {
        throw refuse(
          'AttestationError',
          'not-accepted',
          decision.refusal?.message ?? 'no SEV-SNP profile accepts the report',
          { outcome: decision.refusal?.reason },
        );
      }
      const guest = decision.guest;
      base.vmId = guest.profileId;
      details.vouchedBy = guest.vouchedBy;
      if (guest.profile.approval === 'manual') {
        details.approval = await this.awaitApproval(guest, verified, client, base, signal);
      }

      const issued = this.deps.tokens.issue({
        tee: 'snp',
        'profile-id': guest.profileId,
        ...(guest.revision !== undefined ? { 'profile-revision': guest.revision } : {}),
        measurement: guest.measurement,
        'chip-id': guest.chipId,
        policy: guest.policy,
        'reported-tcb': guest.reportedTcb,
        'tee-pubkey': guest.teePubkey.jwk,
      });
      // The token's exp is in seconds; the attested session lives exactly as long.
      const expiresAt = issued.expiresAt * 1000;
      await this.sessions.attested(session.id, guest, expiresAt);
      attesting = false;
      this.audit({
        ...base,
        result: 'ok',
        message: `attested as ${guest.profileId}: token issued until ${new Date(expiresAt).toISOString()}`,
        details: { ...details, tokenExpiresAt: new Date(expiresAt).toISOString() },
      });
      return { token: issued.token, expiresAt };
    } catch (e) {
      if (session && attesting) {
        await this.sessions.spend(session.id).catch(() => {
          // Left attesting: it never attests again either, and expires.
        });
      }
      throw this.refused(base, e);
    }
  }

  /** GET /kbs/v0/resource/{repository}/{type}/{tag}: the value as a JWE for the guest. Throws KbsRefusal. */
  async resource(
    sessionId: string | undefined,
    repository: string,
    type: string,
    tag: string,
    client: ClientInfo,
  ): Promise<FlattenedJwe> {
    const path = `${repository}/${type}/${tag}`;
    const base: AuditEventInput = {
      type: 'snp-attest',
      result: 'refused',
      client: clientLabel(client),
      details: { resource: path },
    };
    let value: Uint8Array | undefined;
    try {
      const session = await this.take(sessionId, 'TokenNotFound');
      const guest = session.guest;
      if (session.state !== 'attested' || !guest) {
        throw refuse(
          'TokenNotFound',
          'not-attested',
          `KBS session has not attested (state ${session.state})`,
        );
      }
      base.vmId = guest.profileId;
      base.chipId = guest.chipId;
      const profile = this.deps.profiles.get(guest.profileId);
      if (!profile || profile.revision !== guest.revision) {
        // A re-handshake (the guest's answer to a 401) appraises the report against the profile as it is now.
        throw refuse(
          'TokenVerifierError',
          'profile-changed',
          profile
            ? `profile ${guest.profileId} changed since the attestation (revision ${guest.revision ?? '-'} -> ${profile.revision ?? '-'})`
            : `profile ${guest.profileId} was deleted since the attestation`,
        );
      }
      const secret = secretForResource(profile, path);
      if (!secret) {
        throw refuse('PolicyDeny', 'resource-not-allowed', `profile ${profile.id} holds no resource ${path}`);
      }
      value = await this.deps.secrets.get(secretAccount(profile.id, secret.guid));
      if (!value) {
        // The owner's configuration, not the guest's: 503, so the guest neither re-attests nor gives up at once.
        throw refuse(
          'ServiceUnavailable',
          'secret-missing',
          `the value of ${path} (secret ${secret.guid} of ${profile.id}) is missing from the ${this.deps.secrets.kind} store`,
          {},
          30,
        );
      }
      const jwe = releaseResource(guest, path, value);
      // The release is on disk before the value leaves; a log that cannot take it refuses the release.
      try {
        await this.deps.audit.appendDurable({
          ...base,
          type: 'secret-release',
          result: 'ok',
          message: `released ${path} to the SEV-SNP guest of ${profile.id}`,
          details: { resource: path, guid: secret.guid, kbs: true },
        });
      } catch (e) {
        throw refuse(
          'ServiceUnavailable',
          'audit-unavailable',
          `the release could not be audited: ${messageOf(e)}`,
          {},
          30,
        );
      }
      return jwe;
    } catch (e) {
      throw this.refused(base, e);
    } finally {
      wipe(value);
    }
  }

  /** The session for a cookie: known and unexpired, else a refusal of the given kind. */
  private async take(sessionId: string | undefined, kind: KbsErrorKind): Promise<KbsSession> {
    if (sessionId === undefined) throw refuse(kind, 'no-session', 'no kbs-session-id cookie');
    let s: KbsSession | undefined;
    try {
      s = await this.sessions.get(sessionId);
    } catch (e) {
      // A stored session that does not open under the service key (copied from another row, changed).
      if (e instanceof DomainError && e.code === 'row-undecryptable')
        throw refuse(kind, 'session-undecryptable', e.message);
      throw e;
    }
    if (!s) throw refuse(kind, 'unknown-session', 'unknown KBS session');
    if (this.now() >= s.expiresAt) {
      await this.sessions.drop(s.id);
      throw refuse(kind, 'session-expired', `KBS session expired at ${new Date(s.expiresAt).toISOString()}`);
    }
    return s;
  }

  /** Rebuilds and verifies the report; refusals name what failed. */
  private async verify(input: KbsAttestInput, details: Record<string, unknown>): Promise<VerifiedSnpReport> {
    const key = (t: string) => input.certChain?.find((c) => c.certType === t)?.data;
    const vcek = key('VCEK');
    const vlek = key('VLEK');
    let product: SnpProduct | undefined;
    try {
      const k = vcek ?? vlek;
      if (k) product = productOfKey(parseSnpCert(k, vcek ? 'VCEK' : 'VLEK'));
    } catch (e) {
      throw refuse('AttestationError', 'bad-evidence', `cert_chain: ${messageOf(e)}`);
    }
    let bytes: Uint8Array;
    let parsed;
    try {
      bytes = reportBytesFromKbsJson(input.report, product);
      parsed = parseReport(bytes);
    } catch (e) {
      throw refuse('AttestationError', 'bad-evidence', `attestation_report: ${messageOf(e)}`);
    }
    product ??= productFromCpuid(parsed.cpuid);
    if (!product) {
      throw refuse(
        'AttestationError',
        'bad-evidence',
        `the product is unknown: a version ${parsed.version} report carries no CPUID and no VCEK/VLEK came with it`,
      );
    }
    const signer = parsed.signerInfo.signingKey;
    let keyDer = signer === 'vlek' ? vlek : vcek;
    details.keySource = keyDer ? 'evidence' : undefined;
    if (!keyDer && signer === 'vcek') {
      if (!this.deps.keys) {
        throw refuse(
          'AttestationError',
          'no-key',
          'the evidence carries no VCEK and no key server is configured',
        );
      }
      try {
        keyDer = (
          await this.deps.keys.getVcek(product, parsed.chipId, decodeTcb(parsed.reportedTcb, product))
        ).der;
        details.keySource = 'key-server';
      } catch (e) {
        const unavailable = isSnpError(e) && e.code === 'kds-unavailable';
        throw refuse(
          'AttestationError',
          unavailable ? 'kds-unavailable' : 'no-key',
          `the VCEK could not be had: ${messageOf(e)}`,
          { coreCode: isSnpError(e) ? e.code : undefined },
        );
      }
    }
    if (!keyDer) {
      throw refuse(
        'AttestationError',
        'no-key',
        `the report is signed by a ${signer.toUpperCase()} and the evidence carries none (a VLEK is never on the key server)`,
      );
    }
    let crl: Uint8Array | undefined;
    let crlWhy: string | undefined;
    // A key issued under an extra root set (the demo's simulated chip) is checked against that set's own
    // CRL (verifyReport): AMD's key server has nothing for it.
    let extraIssuer = false;
    if (signer !== 'none') {
      try {
        const key = parseSnpCert(keyDer, signer.toUpperCase());
        extraIssuer = this.deps.trust?.extraIssuerOf(product, key, signer) !== undefined;
      } catch {
        // An unreadable key is refused by verifyReport below.
      }
    }
    if (extraIssuer) {
      // verifyReport takes that set's CRL.
    } else if (this.deps.keys) {
      try {
        crl = (await this.deps.keys.getCrl(product, new Date(this.now()))).der;
      } catch (e) {
        crlWhy = `the ${product} CRL could not be fetched: ${messageOf(e)}`;
      }
    } else crlWhy = 'no key server is configured';
    const allowMissingCrl = this.deps.allowMissingCrl?.() ?? false;
    try {
      return verifyReport(bytes, {
        ...(signer === 'vlek' ? { vlek: keyDer } : { vcek: keyDer }),
        product,
        ...(crl ? { crl } : {}),
        ...(crlWhy ? { crlUnavailableReason: crlWhy } : {}),
        allowMissingCrl,
        now: new Date(this.now()),
        ...(this.deps.trust ? { trust: this.deps.trust } : {}),
      });
    } catch (e) {
      if (!(e instanceof SnpError)) throw e;
      throw refuse(
        'AttestationError',
        e.code === 'crl-unavailable' ? 'kds-unavailable' : 'report-invalid',
        e.message,
        { coreCode: e.code },
      );
    }
  }

  /** Every SNP profile with the measurements it admits (one whose list cannot be computed is left out). */
  private async candidates(details: Record<string, unknown>): Promise<SnpCandidate[]> {
    const out: SnpCandidate[] = [];
    const failed: Array<{ vmId: string; error: string }> = [];
    for (const p of this.deps.profiles.list()) {
      if (p.scheme !== 'amd-sev-snp') continue;
      try {
        out.push({ profile: p, measurements: await this.deps.measurements.forProfile(p) });
      } catch (e) {
        failed.push({ vmId: p.id, error: messageOf(e) });
      }
    }
    if (failed.length) details.profilesWithoutMeasurements = failed;
    return out;
  }

  /** Asks the owner (or joins the same pending request) and waits, bounded, for the decision. */
  private async awaitApproval(
    guest: VerifiedSnpGuest,
    verified: VerifiedSnpReport,
    client: ClientInfo,
    base: AuditEventInput,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const group = clientGroup(client.address);
    const policyBytes = Buffer.alloc(8);
    policyBytes.writeBigUInt64LE(verified.report.policy.raw);
    // Not the nonce: a guest retrying with a new session waits on the same approval.
    const fp = approvalFingerprint(group, guest.profileId, [
      Buffer.from(guest.revision ?? ''),
      verified.report.measurement,
      verified.report.chipId,
      policyBytes,
      verified.report.reportedTcb,
    ]);
    let approval: Approval;
    let created: boolean;
    try {
      ({ approval, created } = this.deps.approvals.request(
        fp,
        {
          kind: 'snp-attest',
          vmId: guest.profileId,
          client: clientLabel(client),
          chipId: guest.chipId,
          anchor: base.anchor,
          policy: Number(verified.report.policy.raw),
          snp: {
            product: guest.product,
            measurement: guest.measurement,
            reportedTcb: formatTcb(guest.reportedTcb),
            policy: guest.policy,
            vmpl: guest.vmpl,
            signer: guest.signer,
            vouchedBy: guest.vouchedBy,
            resources: guest.resources,
            revocation: revocationText(verified),
          },
        },
        { client: group, platform: guest.chipId, authenticated: false },
      ));
    } catch (e) {
      if (isDomainError(e) && e.code === 'rate-limited') {
        throw refuse('TooManyRequests', 'rate-limited', e.message, {}, e.retryAfterSeconds ?? 30);
      }
      throw e;
    }
    if (created) {
      this.audit({
        ...base,
        result: 'pending',
        reason: 'approval-required',
        message: `waiting for the owner to approve (approval ${approval.id})`,
        details: { ...base.details, approval: approval.id },
      });
    }
    const waited = approval.state === 'pending';
    if (waited) await this.waitDecided(approval, signal);
    // 'used': another attest of the same guest (same fingerprint) waited on this approval too and took it.
    if (approval.state === 'approved' || (waited && approval.state === 'used')) {
      this.deps.approvals.consume(approval);
      return approval.id;
    }
    if (approval.state === 'denied') {
      throw refuse(
        'AttestationError',
        'denied',
        approval.reason === 'timeout'
          ? 'the owner did not decide in time'
          : 'the owner denied this attestation',
        { approval: approval.id, approvalReason: approval.reason },
      );
    }
    throw refuse(
      'AttestationError',
      'approval-pending',
      signal?.aborted
        ? `the guest hung up while approval ${approval.id} was pending`
        : `the owner has not decided within ${this.approvalWait()} s (approval ${approval.id} still pending)`,
      { approval: approval.id },
    );
  }

  /** Resolves when the approval leaves 'pending', the wait ends or the client goes away. */
  private waitDecided(approval: Approval, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      let unsubscribe: () => void = () => {};
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, this.approvalWait()) * 1000);
      unsubscribe = this.deps.approvals.subscribe((a) => {
        if (a.id === approval.id && a.state !== 'pending') done();
      });
      signal?.addEventListener('abort', done);
      if (approval.state !== 'pending' || signal?.aborted) done();
    });
  }

  /** Fire-and-forget audit; a failing log must not turn a refusal into a 500. */
  private audit(e: AuditEventInput): void {
    try {
      this.deps.audit.append(e);
    } catch {
      // The audit log reports its own failures.
    }
  }

  /** Audits a failure and returns the KbsRefusal the guest sees (a generic detail). */
  private refused(base: AuditEventInput, e: unknown): KbsRefusal {
    let r: KbsRefusal;
    if (e instanceof KbsRefusal) r = e;
    else if (e instanceof SecretStoreUnavailableError)
      r = refuse('ServiceUnavailable', 'secret-store-unavailable', e.message, {}, 30);
    else if (isKbsProtocolError(e)) r = refuse(e.kind, 'bad-evidence', e.message);
    else if (isDomainError(e) && e.code === 'database-unavailable')
      r = refuse('ServiceUnavailable', 'database-unavailable', e.message, {}, e.retryAfterSeconds ?? 5);
    else r = refuse('Internal', 'internal', messageOf(e));
    this.audit({
      ...base,
      result: r.kind === 'Internal' ? 'error' : 'refused',
      reason: r.reason,
      message: r.message,
      details: { ...base.details, ...r.details },
    });
    return r;
  }
}

function revocationText(v: VerifiedSnpReport): string {
  return v.revocation.checked
    ? `CRL checked (this update ${v.revocation.thisUpdate.toISOString()})`
    : `not checked: ${v.revocation.reason}`;
}
