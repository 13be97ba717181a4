/**
 * Owner approvals of launch requests. A pending approval is keyed by the request's fingerprint (client,
 * VM and the hash of what the host sent, cpu-id and CEK included), so a host repeating the same request keeps waiting on the same
 * approval instead of queueing another. approve / deny / timeout (= deny) decide it; an approval is
 * consumed by the one launch it admits.
 */
import { createHash, randomUUID } from 'node:crypto';
import { DomainError } from '../../app/errors';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'used';

/** What an SEV-SNP guest's attestation showed, for the owner's approval card and the audit. */
export interface SnpApprovalInfo {
  /** 'Milan', 'Genoa', 'Turin'. */
  product: string;
  /** The launch measurement, 96 hex. */
  measurement: string;
  /** The reported TCB as formatTcb prints it. */
  reportedTcb: string;
  /** The guest policy in hex (0x...). */
  policy: string;
  vmpl: number;
  signer: 'vcek' | 'vlek';
  /** What vouched for the launch. */
  vouchedBy: 'measurement' | 'id-key' | 'author-key';
  /** The resource paths (repository/type/tag) the profile holds. */
  resources: string[];
  /** How revocation was checked ('CRL checked' or why not). */
  revocation: string;
}

export interface ApprovalRequestInfo {
  /** What asks: a host's SEV launch (the default) or an SEV-SNP guest's attestation. */
  kind?: 'sev-launch' | 'snp-attest';
  /** Present when kind is 'snp-attest'. */
  snp?: SnpApprovalInfo;
  vmId: string | undefined;
  client: string;
  chipId: string | undefined;
  anchor: string | undefined;
  policy: number;
  /** The firmware API version stamped into the PDH by the firmware that generated it. */
  firmwareApi?: { major: number; minor: number };
  /** Whether the chain proves the chip id (a CEK signed for that chip); undefined when not known. */
  chipProven?: boolean;
}

/**
 * The owner's answer: approve; deny for a while (identical launches are refused until the decision is
 * forgotten, decisionTtlMs); or deny once (the waiting host is told, identical launches ask again).
 */
export type ApprovalDecision = 'approve' | 'deny' | 'deny-once';

/**
 * Whose budget a new pending approval counts against: the client group (IPv4 /24, IPv6 /64), the
 * platform (a hash of the PDH) and whether the host presented the host token (a separate budget, so a
 * flood of anonymous requests cannot lock out a host with the token).
 */
export interface ApprovalQuota {
  client: string;
  platform: string;
  authenticated: boolean;
}

export interface Approval extends ApprovalRequestInfo {
  readonly id: string;
  readonly fingerprint: string;
  state: ApprovalState;
  /** 'owner' or 'timeout' once denied; 'owner' once approved. */
  reason: string | undefined;
  readonly createdAt: number;
  /** When a pending approval times out (denied), or when a decided one is forgotten. */
  expiresAt: number;
  decidedAt: number | undefined;
  /** A denial that is remembered only long enough for the waiting host to be told (deny once). */
  denyOnce?: boolean;
  readonly quota?: ApprovalQuota;
}

export type ApprovalListener = (a: Approval) => void;

/**
 * Shares approvals between replicas (serve --database; server/storage/pg/approvals.ts): every local
 * change is published, changes from other replicas come back through ApprovalService.applyRemote, and
 * the one step that must be exclusive, spending an approved approval, is decided by the database.
 */
export interface ApprovalReplication {
  /** A local change (created, decided, timed out, used) or a forget; written in the background. */
  publish(a: Approval, forgotten?: boolean): void;
  /** Atomically approved -> used for the whole deployment; false when another replica spent it first. */
  claim(id: string): Promise<boolean>;
}

export interface ApprovalServiceOptions {
  /** How long the owner has to decide (seconds, default 300). A function so settings changes apply. */
  timeoutSeconds?: number | (() => number);
  /** How long a decision is remembered for the host to pick up (default 10 minutes). */
  decisionTtlMs?: number;
  /** How long a deny-once is remembered: long enough for the waiting host's next poll (default 60 s). */
  denyOnceTtlMs?: number;
  /** At most this many pending approvals of anonymous hosts at once (default 1000): more is a flood, answered 429. */
  maxPending?: number;
  /** Pending approvals per client group (default 4). */
  maxPendingPerClient?: number;
  /** Pending approvals per platform (PDH; default 4): a replayed public chain fills only its own. */
  maxPendingPerPlatform?: number;
  /** Pending approvals of hosts that presented the host token, counted apart (default 1000). */
  maxPendingAuthenticated?: number;
  now?: () => number;
  /** serve --database: approvals shared with the other replicas. */
  replication?: ApprovalReplication;
}

/** The request fingerprint: client + VM + sha256 of the material the host sent. */
export function approvalFingerprint(
  client: string,
  vmId: string | undefined,
  material: Uint8Array[],
): string {
  const h = createHash('sha256');
  for (const m of material) {
    h.update(String(m.length) + ':');
    h.update(m);
  }
  return createHash('sha256')
    .update(`${client}\n${vmId ?? '*'}\n${h.digest('hex')}`)
    .digest('hex');
}

/** What a launch approval is given for: everything the host sent that the launch depends on. */
export interface LaunchApprovalMaterial {
  pdh: Uint8Array;
  certChain: Uint8Array;
  policy: number;
  /** The claimed cpu-id: an approval for one chip does not admit a launch claiming another. */
  chipId: Uint8Array | undefined;
  /** The host-supplied CEK: an approval for one CEK does not admit a launch with another. */
  cek: Uint8Array | undefined;
}

/** The fingerprint of a launch approval: client, VM, PDH, chain, policy, cpu-id and CEK. */
export function launchApprovalFingerprint(
  client: string,
  vmId: string | undefined,
  m: LaunchApprovalMaterial,
): string {
  const policy = new Uint8Array(4);
  new DataView(policy.buffer).setUint32(0, m.policy >>> 0, true);
  // An absent cpu-id or CEK is a zero-length part: length-prefixed, it differs from any present value.
  return approvalFingerprint(client, vmId, [
    m.pdh,
    m.certChain,
    policy,
    m.chipId ?? new Uint8Array(0),
    m.cek ?? new Uint8Array(0),
  ]);
}

/** Pending and recently decided approvals, in memory. */
export class ApprovalService {
  private readonly byId = new Map<string, Approval>();
  private readonly byFingerprint = new Map<string, string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<ApprovalListener>();
  private readonly timeout: () => number;
  private readonly decisionTtlMs: number;
  private readonly denyOnceTtlMs: number;
  private readonly listChangeListeners = new Set<() => void>();
  private readonly maxPending: number;
  private readonly maxPerClient: number;
  private readonly maxPerPlatform: number;
  private readonly maxAuthenticated: number;
  private readonly now: () => number;
  private readonly replication: ApprovalReplication | undefined;

  constructor(opts: ApprovalServiceOptions = {}) {
    this.replication = opts.replication;
    const t = opts.timeoutSeconds ?? 300;
    this.timeout = typeof t === 'function' ? t : () => t;
    this.decisionTtlMs = opts.decisionTtlMs ?? 10 * 60_000;
    this.denyOnceTtlMs = opts.denyOnceTtlMs ?? 60_000;
    this.maxPending = opts.maxPending ?? 1000;
    this.maxPerClient = opts.maxPendingPerClient ?? 4;
    this.maxPerPlatform = opts.maxPendingPerPlatform ?? 4;
    this.maxAuthenticated = opts.maxPendingAuthenticated ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The approval for this fingerprint: the existing one if the same request was seen (pending or
   * decided and not yet consumed), else a new pending one. `created` tells which.
   */
  request(
    fingerprint: string,
    info: ApprovalRequestInfo,
    quota?: ApprovalQuota,
  ): { approval: Approval; created: boolean } {
    this.forgetExpired();
    const existingId = this.byFingerprint.get(fingerprint);
    const existing = existingId ? this.byId.get(existingId) : undefined;
    if (existing && existing.state !== 'used') return { approval: existing, created: false };
    this.checkQuota(quota);
    const now = this.now();
    const timeoutMs = Math.max(1, this.timeout()) * 1000;
    const a: Approval = {
      ...info,
      ...(quota ? { quota } : {}),
      id: randomUUID(),
      fingerprint,
      state: 'pending',
      reason: undefined,
      createdAt: now,
      expiresAt: now + timeoutMs,
      decidedAt: undefined,
    };
    this.byId.set(a.id, a);
    this.byFingerprint.set(fingerprint, a.id);
    const timer = setTimeout(() => this.decideInternal(a, 'denied', 'timeout'), timeoutMs);
    timer.unref();
    this.timers.set(a.id, timer);
    this.emit(a);
    this.replication?.publish(a);
    return { approval: a, created: true };
  }

  /** Refuses (429) a new pending approval over its budgets: per client, per platform, in all. */
  private checkQuota(q: ApprovalQuota | undefined): void {
    const authenticated = q?.authenticated === true;
    let total = 0;
    let client = 0;
    let platform = 0;
    for (const a of this.byId.values()) {
      if (a.state !== 'pending' || (a.quota?.authenticated === true) !== authenticated) continue;
      total++;
      if (q && a.quota?.client === q.client) client++;
      if (q && a.quota?.platform === q.platform) platform++;
    }
    const refuse = (message: string) => {
      throw new DomainError('rate-limited', message, { retryAfterSeconds: 30 });
    };
    if (total >= (authenticated ? this.maxAuthenticated : this.maxPending))
      refuse('too many launches are waiting for the owner; try later');
    if (q && client >= this.maxPerClient)
      refuse('too many launches from this client are waiting for the owner');
    if (q && platform >= this.maxPerPlatform)
      refuse('too many launches of this platform are waiting for the owner');
  }

  /** The owner's decision. Throws unknown-approval / approval-decided. */
  decide(id: string, decision: ApprovalDecision): Approval {
    this.forgetExpired();
    const a = this.byId.get(id);
    if (!a) throw new DomainError('unknown-approval', `no approval with id ${id}`);
    if (a.state !== 'pending')
      throw new DomainError('approval-decided', `approval ${id} is already ${a.state}`);
    if (decision === 'deny-once') a.denyOnce = true;
    this.decideInternal(
      a,
      decision === 'approve' ? 'approved' : 'denied',
      'owner',
      decision === 'deny-once' ? this.denyOnceTtlMs : this.decisionTtlMs,
    );
    return a;
  }

  /**
   * Forgets a decision now (the owner's "Forget decision"): identical launches ask the owner again
   * instead of being refused until it expires. Throws unknown-approval, or approval-decided for a
   * pending one (decide it instead).
   */
  forget(id: string): Approval {
    this.forgetExpired();
    const a = this.byId.get(id);
    if (!a) throw new DomainError('unknown-approval', `no approval with id ${id}`);
    if (a.state === 'pending') throw new DomainError('approval-decided', `approval ${id} is still pending`);
    this.byId.delete(id);
    if (this.byFingerprint.get(a.fingerprint) === id) this.byFingerprint.delete(a.fingerprint);
    this.replication?.publish(a, true);
    for (const fn of this.listChangeListeners) {
      try {
        fn();
      } catch {
        // A listener's failure must not break the change.
      }
    }
    return a;
  }

  /** Called when approvals leave the list without a state change (forget). Returns the unsubscribe function. */
  onListChange(fn: () => void): () => void {
    this.listChangeListeners.add(fn);
    return () => this.listChangeListeners.delete(fn);
  }

  /** Until when identical launches are refused by this (denied) approval, or undefined. */
  refusedUntil(a: Approval): number | undefined {
    if (a.state !== 'denied' || this.byFingerprint.get(a.fingerprint) !== a.id) return undefined;
    return a.expiresAt;
  }

  /** Marks an approved approval as spent by the launch it admitted; the next identical request asks again. */
  consume(a: Approval): void {
    if (a.state !== 'approved') return;
    a.state = 'used';
    if (this.byFingerprint.get(a.fingerprint) === a.id) this.byFingerprint.delete(a.fingerprint);
    this.emit(a);
    this.replication?.publish(a);
  }

  /**
   * Spends an approved approval for the one launch it admits: with replicas, only the first replica to
   * claim it in the database gets true (the others mark it used and refuse). Alone, the same as consume().
   */
  async consumeOnce(a: Approval): Promise<boolean> {
    if (a.state !== 'approved') return false;
    if (this.replication && !(await this.replication.claim(a.id))) {
      this.applyUsed(a);
      return false;
    }
    if (a.state !== 'approved') return false;
    this.consume(a);
    return true;
  }

  private applyUsed(a: Approval): void {
    if (a.state === 'used') return;
    a.state = 'used';
    if (this.byFingerprint.get(a.fingerprint) === a.id) this.byFingerprint.delete(a.fingerprint);
    this.emit(a);
  }

  /**
   * A change made by another replica (or read at start): added, or moved forward (pending -> decided ->
   * used; never back), with its timer and the subscribers told; `forgotten` removes it.
   */
  applyRemote(remote: Approval, forgotten = false): void {
    const local = this.byId.get(remote.id);
    if (forgotten) {
      if (!local) return;
      const t = this.timers.get(local.id);
      if (t) clearTimeout(t);
      this.timers.delete(local.id);
      this.byId.delete(local.id);
      if (this.byFingerprint.get(local.fingerprint) === local.id)
        this.byFingerprint.delete(local.fingerprint);
      for (const fn of this.listChangeListeners) {
        try {
          fn();
        } catch {
          // A listener's failure must not break the change.
        }
      }
      return;
    }
    const rank = (s: ApprovalState) => (s === 'pending' ? 0 : s === 'used' ? 2 : 1);
    if (local && rank(remote.state) <= rank(local.state)) return;
    const a: Approval = local ?? { ...remote };
    if (local) {
      a.state = remote.state;
      a.reason = remote.reason;
      a.decidedAt = remote.decidedAt;
      a.expiresAt = remote.expiresAt;
      if (remote.denyOnce) a.denyOnce = true;
    } else {
      this.byId.set(a.id, a);
      if (a.state !== 'used') this.byFingerprint.set(a.fingerprint, a.id);
    }
    const t = this.timers.get(a.id);
    if (t) clearTimeout(t);
    this.timers.delete(a.id);
    if (a.state === 'pending') {
      const timer = setTimeout(
        () => this.decideInternal(a, 'denied', 'timeout'),
        Math.max(1, a.expiresAt - this.now()),
      );
      timer.unref();
      this.timers.set(a.id, timer);
    }
    if (a.state === 'used' && this.byFingerprint.get(a.fingerprint) === a.id)
      this.byFingerprint.delete(a.fingerprint);
    this.emit(a);
  }

  get(id: string): Approval | undefined {
    return this.byId.get(id);
  }

  /** All known approvals, newest first. */
  list(): Approval[] {
    this.forgetExpired();
    return [...this.byId.values()].sort((x, y) => y.createdAt - x.createdAt);
  }

  get pendingCount(): number {
    let n = 0;
    for (const a of this.byId.values()) if (a.state === 'pending') n++;
    return n;
  }

  /** Seconds until a pending approval times out (for Retry-After hints). */
  secondsLeft(a: Approval): number {
    return Math.max(1, Math.ceil((a.expiresAt - this.now()) / 1000));
  }

  /** Live changes (created, decided, timed out, consumed). Returns the unsubscribe function. */
  subscribe(fn: ApprovalListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Denies everything pending and clears timers (shutdown). */
  close(): void {
    for (const a of this.byId.values())
      if (a.state === 'pending') this.decideInternal(a, 'denied', 'shutdown');
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private decideInternal(
    a: Approval,
    state: 'approved' | 'denied',
    reason: string,
    rememberMs: number = this.decisionTtlMs,
  ): void {
    if (a.state !== 'pending') return;
    const t = this.timers.get(a.id);
    if (t) clearTimeout(t);
    this.timers.delete(a.id);
    const now = this.now();
    a.state = state;
    a.reason = reason;
    a.decidedAt = now;
    a.expiresAt = now + rememberMs;
    this.emit(a);
    // A replica shutting down denies nothing for the others: their hosts still wait on it.
    if (reason !== 'shutdown') this.replication?.publish(a);
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [id, a] of this.byId) {
      if (a.state === 'pending' && now >= a.expiresAt) this.decideInternal(a, 'denied', 'timeout');
      else if (a.state !== 'pending' && now >= a.expiresAt) {
        this.byId.delete(id);
        if (this.byFingerprint.get(a.fingerprint) === id) this.byFingerprint.delete(a.fingerprint);
      }
    }
  }

  private emit(a: Approval): void {
    for (const fn of this.listeners) {
      try {
        fn(a);
      } catch {
        // A listener's failure must not break the decision.
      }
    }
  }
}
