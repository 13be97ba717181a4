/**
 * Launch connections: the TEK/TIK of each launch session, held in memory only, for the time between
 * launch and validate. A connection releases its secrets once; keys are wiped on use and on expiry; ids
 * are random UUIDs and never reused. Used and expired connections leave a key-free tombstone so a late
 * or replayed validate gets 409 / 410 instead of 404. A VM's "latest connection" is kept per client: a
 * validate by VM id only ever reaches a connection the same client launched.
 */
import { randomUUID } from 'node:crypto';
import { wipe } from '../../app/sev/bytes';
import { DomainError } from '../../app/errors';

export type ConnectionState = 'open' | 'in-use' | 'used' | 'expired';

export interface Connection {
  readonly id: string;
  /** The VM the launch named; undefined for POST /v1/launch (bound at validate time). */
  readonly vmId: string | undefined;
  readonly policy: number;
  readonly client: string;
  /** Who launched it (address and host-token identity): only that client's VM-path validate finds it. */
  readonly clientKey: string;
  /** The revision of the VM's profile at launch (see VmProfile.revision). */
  readonly profileRevision: string | undefined;
  /** The PROVEN chip id (hex); a claimed but unproven cpu-id is not kept here. */
  readonly chipId: string | undefined;
  readonly anchor: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  state: ConnectionState;
  /** Present only while open or in use. */
  tek: Uint8Array | undefined;
  tik: Uint8Array | undefined;
}

export interface NewConnection {
  vmId: string | undefined;
  policy: number;
  client: string;
  /** Default: the client label. */
  clientKey?: string;
  profileRevision?: string | undefined;
  chipId: string | undefined;
  anchor: string;
  tek: Uint8Array;
  tik: Uint8Array;
}

export type TakeResult =
  | { ok: true; connection: Connection }
  | { ok: false; reason: 'unknown-connection' | 'connection-used' | 'connection-expired' };

/**
 * Where launch connections live: this process's memory (ConnectionTable, the laptop and a single serve)
 * or the shared database (server/storage/pg/connections.ts, serve --database). Methods may answer
 * synchronously or with a promise; callers await them.
 */
export interface ConnectionStore {
  create(c: NewConnection): Connection | Promise<Connection>;
  latestFor(vmId: string, clientKey: string): string | undefined | Promise<string | undefined>;
  /** Claims a connection for its one validate: exactly one caller ever gets ok for an id. */
  take(id: string): TakeResult | Promise<TakeResult>;
  /** Ends a taken connection: its keys wiped, never released again. Never throws. */
  finish(c: Connection): void | Promise<void>;
  /** Connections still waiting for their validate (the shared store: as of its last count). */
  readonly openCount: number;
  close(): void | Promise<void>;
}

export interface ConnectionTableOptions {
  /** How long a launch may wait for its validate (default 10 minutes). */
  ttlMs?: number;
  /** How long a tombstone is kept (default 1 hour). */
  tombstoneMs?: number;
  /** Upper bound on live + tombstoned entries; the oldest tombstones go first (default 20000). */
  maxEntries?: number;
  now?: () => number;
}

/** The in-memory table of launch connections. */
export class ConnectionTable implements ConnectionStore {
  private readonly byId = new Map<string, Connection>();
  private readonly latestByVm = new Map<string, string>();
  private readonly ttlMs: number;
  private readonly tombstoneMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(opts: ConnectionTableOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.tombstoneMs = opts.tombstoneMs ?? 60 * 60_000;
    this.maxEntries = opts.maxEntries ?? 20_000;
    this.now = opts.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.ttlMs, 30_000));
    this.sweeper.unref();
  }

  /** Stores a fresh connection (copies of TEK/TIK; the caller wipes its own). */
  create(c: NewConnection): Connection {
    this.sweep();
    if (this.byId.size >= this.maxEntries) this.evictTombstones();
    if (this.byId.size >= this.maxEntries) {
      throw new DomainError('rate-limited', 'too many launches are waiting for their validate; try later', {
        retryAfterSeconds: 30,
      });
    }
    const now = this.now();
    const conn: Connection = {
      id: randomUUID(),
      vmId: c.vmId,
      policy: c.policy,
      client: c.client,
      clientKey: c.clientKey ?? c.client,
      profileRevision: c.profileRevision,
      chipId: c.chipId,
      anchor: c.anchor,
      createdAt: now,
      expiresAt: now + this.ttlMs,
      state: 'open',
      tek: Uint8Array.from(c.tek),
      tik: Uint8Array.from(c.tik),
    };
    this.byId.set(conn.id, conn);
    if (c.vmId !== undefined) this.latestByVm.set(latestKey(c.vmId, conn.clientKey), conn.id);
    return conn;
  }

  /**
   * The id of the VM's latest connection launched by this client (its clientKey), if any. Another
   * client's launch of the same VM never shadows it, and another client never reaches it.
   */
  latestFor(vmId: string, clientKey: string): string | undefined {
    return this.latestByVm.get(latestKey(vmId, clientKey));
  }

  /**
   * Claims a connection for its one validate: synchronously moves it from open to in-use, so a
   * concurrent or replayed validate gets connection-used. Call finish() when done.
   */
  take(id: string): TakeResult {
    const c = this.byId.get(id);
    if (!c) return { ok: false, reason: 'unknown-connection' };
    this.expireIfDue(c);
    if (c.state === 'expired') return { ok: false, reason: 'connection-expired' };
    if (c.state !== 'open') return { ok: false, reason: 'connection-used' };
    c.state = 'in-use';
    return { ok: true, connection: c };
  }

  /** Ends a taken connection: keys wiped, state used (it never releases again). */
  finish(c: Connection): void {
    wipe(c.tek);
    wipe(c.tik);
    c.tek = undefined;
    c.tik = undefined;
    c.state = 'used';
  }

  /** Connections still waiting for their validate. */
  get openCount(): number {
    let n = 0;
    for (const c of this.byId.values()) if (c.state === 'open' || c.state === 'in-use') n++;
    return n;
  }

  get(id: string): Connection | undefined {
    return this.byId.get(id);
  }

  /** Wipes expired keys and drops old tombstones. */
  sweep(): void {
    const now = this.now();
    for (const [id, c] of this.byId) {
      this.expireIfDue(c);
      if ((c.state === 'used' || c.state === 'expired') && now > c.expiresAt + this.tombstoneMs) {
        this.byId.delete(id);
        this.forgetLatest(c);
      }
    }
  }

  /** Wipes every key and stops the sweeper (shutdown). */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.byId.values()) {
      if (c.state === 'open' || c.state === 'in-use') {
        wipe(c.tek);
        wipe(c.tik);
        c.tek = undefined;
        c.tik = undefined;
        c.state = 'expired';
      }
    }
  }

  private forgetLatest(c: Connection): void {
    if (c.vmId === undefined) return;
    const key = latestKey(c.vmId, c.clientKey);
    if (this.latestByVm.get(key) === c.id) this.latestByVm.delete(key);
  }

  private expireIfDue(c: Connection): void {
    if (c.state === 'open' && this.now() >= c.expiresAt) {
      wipe(c.tek);
      wipe(c.tik);
      c.tek = undefined;
      c.tik = undefined;
      c.state = 'expired';
    }
  }

  private evictTombstones(): void {
    for (const [id, c] of this.byId) {
      if (this.byId.size < this.maxEntries) return;
      if (c.state === 'used' || c.state === 'expired') {
        this.byId.delete(id);
        this.forgetLatest(c);
      }
    }
  }
}

function latestKey(vmId: string, clientKey: string): string {
  return `${vmId}\n${clientKey}`;
}
