/**
 * Where the KBS service keeps SEV-SNP guests' sessions (docs/protocol.md §15): in memory on the laptop
 * and a single serve (MemoryKbsSessionStore), in the shared database with `serve --database`
 * (server/storage/pg/kbs-sessions.ts), so a guest's auth, attest and resource may each reach another
 * replica. The caps (in all, per client group) are counted where the sessions are.
 */
import type { VerifiedSnpGuest } from '../../app/decision/snp';

export type KbsSessionState = 'challenged' | 'attesting' | 'attested' | 'spent';

export interface KbsSession {
  /** The cookie value. */
  readonly id: string;
  readonly group: string;
  readonly nonce: string;
  readonly state: KbsSessionState;
  readonly createdAt: number;
  /** ms since the epoch: the challenge's expiry, then the token's. */
  readonly expiresAt: number;
  /** Set once attested. */
  readonly guest?: VerifiedSnpGuest;
}

export interface KbsSessionCaps {
  maxSessions: number;
  maxPerClient: number;
}

export type KbsOpenResult =
  | { ok: true }
  /** Over a cap: `whole` the cap in all, else the group's; `open` how many count; when one frees. */
  | { ok: false; whole: boolean; open: number; retryAfterSeconds: number };

export interface KbsSessionStore {
  /** Sessions held (memory: exact; the database: as of this replica's last count). */
  readonly size: number;
  /** Stores a new challenged session unless a cap is reached (expired and spent ones do not count). */
  open(s: Omit<KbsSession, 'state' | 'guest'>, caps: KbsSessionCaps): Promise<KbsOpenResult>;
  /** The session as stored (expired or not: the caller tells), undefined when unknown. */
  get(id: string): Promise<KbsSession | undefined>;
  /** challenged -> attesting, atomically: true for exactly one caller; false when not challenged. */
  beginAttest(id: string): Promise<boolean>;
  /** attesting -> attested with the guest, living until `expiresAt`. */
  attested(id: string, guest: VerifiedSnpGuest, expiresAt: number): Promise<void>;
  /** attesting -> spent (a failed attest: the session never attests). */
  spend(id: string): Promise<void>;
  drop(id: string): Promise<void>;
  /** Forgets expired and spent sessions. */
  sweep(now: number): Promise<void>;
  close(): void;
}

interface MemorySession {
  id: string;
  group: string;
  nonce: string;
  state: KbsSessionState;
  createdAt: number;
  expiresAt: number;
  guest?: VerifiedSnpGuest;
}

/** Sessions in this process's memory, bounded by the caps. */
export class MemoryKbsSessionStore implements KbsSessionStore {
  private readonly sessions = new Map<string, MemorySession>();
  private readonly perGroup = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.sessions.size;
  }

  async open(s: Omit<KbsSession, 'state' | 'guest'>, caps: KbsSessionCaps): Promise<KbsOpenResult> {
    if (this.sessions.size >= caps.maxSessions || (this.perGroup.get(s.group) ?? 0) >= caps.maxPerClient) {
      await this.sweep(this.now());
    }
    const inGroup = this.perGroup.get(s.group) ?? 0;
    if (this.sessions.size >= caps.maxSessions || inGroup >= caps.maxPerClient) {
      const whole = this.sessions.size >= caps.maxSessions;
      return {
        ok: false,
        whole,
        open: whole ? this.sessions.size : inGroup,
        retryAfterSeconds: this.retryAfter(whole ? undefined : s.group),
      };
    }
    this.sessions.set(s.id, { ...s, state: 'challenged' });
    this.perGroup.set(s.group, inGroup + 1);
    return { ok: true };
  }

  async get(id: string): Promise<KbsSession | undefined> {
    const s = this.sessions.get(id);
    return s ? { ...s } : undefined;
  }

  async beginAttest(id: string): Promise<boolean> {
    const s = this.sessions.get(id);
    if (!s || s.state !== 'challenged') return false;
    s.state = 'attesting';
    return true;
  }

  async attested(id: string, guest: VerifiedSnpGuest, expiresAt: number): Promise<void> {
    const s = this.sessions.get(id);
    if (!s || s.state !== 'attesting') return;
    s.state = 'attested';
    s.guest = guest;
    s.expiresAt = expiresAt;
  }

  async spend(id: string): Promise<void> {
    const s = this.sessions.get(id);
    if (s && s.state === 'attesting') s.state = 'spent';
  }

  async drop(id: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    const n = (this.perGroup.get(s.group) ?? 1) - 1;
    if (n <= 0) this.perGroup.delete(s.group);
    else this.perGroup.set(s.group, n);
  }

  async sweep(now: number): Promise<void> {
    for (const s of [...this.sessions.values()]) {
      if (now >= s.expiresAt || s.state === 'spent') await this.drop(s.id);
    }
  }

  close(): void {
    this.sessions.clear();
    this.perGroup.clear();
  }

  /** Seconds until a session of the group (or any) expires: the Retry-After of a 429. */
  private retryAfter(group: string | undefined): number {
    const now = this.now();
    let soonest = Infinity;
    for (const s of this.sessions.values()) {
      if (group === undefined || s.group === group) soonest = Math.min(soonest, s.expiresAt);
    }
    return Number.isFinite(soonest) ? Math.max(1, Math.ceil((soonest - now) / 1000)) : 1;
  }
}
