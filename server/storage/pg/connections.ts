/**
 * Launch connections in the shared database, so a launch answered by one replica is validated by any
 * other. TEK || TIK are sealed under the service key bound to (connections, id, 'open') and are NULL in
 * every other state. A connection releases once across all replicas: take() is one atomic statement that
 * moves the row from 'open' to 'in-use' and hands back the sealed keys; PostgreSQL's row lock lets
 * exactly one concurrent caller see the row still open. A replica killed after take() leaves the row
 * 'in-use' without keys: it never releases again (the host launches anew).
 */
import { randomUUID } from 'node:crypto';
import { wipe } from '../../../app/sev/bytes';
import { DomainError, messageOf } from '../../../app/errors';
import type { Connection, ConnectionStore, NewConnection, TakeResult } from '../../services/connections';
import type { Database } from './database';
import type { RowCipher } from './row-cipher';

const TABLE = 'connections';
/** TEK and TIK: AES-128 and HMAC keys of the SEV launch session. */
const KEY_BYTES = 16;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Row {
  id: string;
  vm_id: string | null;
  client: string;
  client_key: string;
  policy: string;
  profile_revision: string | null;
  chip_id: string | null;
  anchor: string;
  created_at: Date;
  expires_at: Date;
  state: Connection['state'];
}

export interface PgConnectionStoreOptions {
  db: Database;
  cipher: RowCipher;
  /** How long a launch may wait for its validate (default 10 minutes). */
  ttlMs?: number;
  /** How long a spent or expired row is kept, so a late validate gets 409/410 (default 1 hour). */
  tombstoneMs?: number;
  /** At most this many open connections in the whole deployment (default 20000): more is answered 429. */
  maxOpen?: number;
  /** How often expired keys are cleared and old tombstones deleted, and openCount refreshed (ms, default 5000). */
  sweepMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export class PgConnectionStore implements ConnectionStore {
  private readonly ttlMs: number;
  private readonly tombstoneMs: number;
  private readonly maxOpen: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private sweeper: NodeJS.Timeout | undefined;
  private lastOpenCount = 0;

  constructor(private readonly opts: PgConnectionStoreOptions) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.tombstoneMs = opts.tombstoneMs ?? 60 * 60_000;
    this.maxOpen = opts.maxOpen ?? 20_000;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.sweeper = setInterval(() => {
      this.sweep().catch((e: unknown) => this.log(`connections: sweep failed (${messageOf(e)})`));
    }, opts.sweepMs ?? 5000);
    this.sweeper.unref();
  }

  get openCount(): number {
    return this.lastOpenCount;
  }

  async create(c: NewConnection): Promise<Connection> {
    if (c.tek.length !== KEY_BYTES || c.tik.length !== KEY_BYTES) {
      throw new DomainError('internal', `a launch session's TEK and TIK are ${KEY_BYTES} bytes each`);
    }
    const now = this.now();
    const id = randomUUID();
    const conn: Connection = {
      id,
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
    const plain = Buffer.concat([conn.tek!, conn.tik!]);
    const sealed = this.opts.cipher.seal({ table: TABLE, id, state: 'open' }, plain);
    wipe(plain);
    // Bounded like the in-memory table, counted and inserted in one statement (no read-then-write race
    // matters here: the bound is a flood guard, not an invariant).
    const r = await this.opts.db.query(
      `INSERT INTO connections (id, vm_id, client, client_key, policy, profile_revision, chip_id, anchor,
                                created_at, expires_at, state, sealed_keys)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11
       WHERE (SELECT count(*) FROM connections WHERE state = 'open' AND expires_at > $9) < $12`,
      [
        id,
        c.vmId ?? null,
        conn.client,
        conn.clientKey,
        c.policy >>> 0,
        c.profileRevision ?? null,
        c.chipId ?? null,
        c.anchor,
        new Date(now),
        new Date(conn.expiresAt),
        sealed,
        this.maxOpen,
      ],
    );
    if (r.rowCount !== 1) {
      wipe(conn.tek);
      wipe(conn.tik);
      throw new DomainError('rate-limited', 'too many launches are waiting for their validate; try later', {
        retryAfterSeconds: 30,
      });
    }
    return conn;
  }

  async latestFor(vmId: string, clientKey: string): Promise<string | undefined> {
    const r = await this.opts.db.query<{ id: string }>(
      'SELECT id FROM connections WHERE vm_id = $1 AND client_key = $2 ORDER BY created_at DESC LIMIT 1',
      [vmId, clientKey],
    );
    return r.rows[0]?.id;
  }

  async take(id: string): Promise<TakeResult> {
    if (!UUID.test(id)) return { ok: false, reason: 'unknown-connection' };
    const now = new Date(this.now());
    // The one release point: the CTE locks the row; a concurrent taker waits, then re-reads it as no
    // longer open (READ COMMITTED re-checks the WHERE on the updated row) and gets nothing.
    const r = await this.opts.db.query<Row & { sealed: Buffer }>(
      `WITH claimed AS (
         SELECT id, sealed_keys FROM connections
         WHERE id = $1 AND state = 'open' AND expires_at > $2 FOR UPDATE
       )
       UPDATE connections c SET state = 'in-use', sealed_keys = NULL
       FROM claimed WHERE c.id = claimed.id
       RETURNING c.*, claimed.sealed_keys AS sealed`,
      [id, now],
    );
    const row = r.rows[0];
    if (!row) return { ok: false, reason: await this.whyNotTaken(id, now) };
    let keys: Buffer;
    try {
      keys = this.opts.cipher.open({ table: TABLE, id: row.id, state: 'open' }, row.sealed);
    } catch (e) {
      // The row is spent either way: a value that does not open is never retried.
      await this.finishRow(row.id);
      throw e;
    }
    const conn = this.fromRow(row);
    conn.state = 'in-use';
    conn.tek = Uint8Array.from(keys.subarray(0, KEY_BYTES));
    conn.tik = Uint8Array.from(keys.subarray(KEY_BYTES, 2 * KEY_BYTES));
    wipe(keys);
    return { ok: true, connection: conn };
  }

  async finish(c: Connection): Promise<void> {
    wipe(c.tek);
    wipe(c.tik);
    c.tek = undefined;
    c.tik = undefined;
    c.state = 'used';
    await this.finishRow(c.id);
  }

  /** Clears the keys of expired connections, deletes old tombstones and refreshes openCount. */
  async sweep(): Promise<void> {
    const now = new Date(this.now());
    await this.opts.db.query(
      `UPDATE connections SET state = 'expired', sealed_keys = NULL WHERE state = 'open' AND expires_at <= $1`,
      [now],
    );
    await this.opts.db.query(`DELETE FROM connections WHERE state <> 'open' AND expires_at < $1`, [
      new Date(now.getTime() - this.tombstoneMs),
    ]);
    const r = await this.opts.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM connections WHERE state IN ('open', 'in-use') AND expires_at > $1`,
      [now],
    );
    this.lastOpenCount = r.rows[0]?.n ?? 0;
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** in-use -> used; a failure only leaves it in-use, which never releases either. */
  private async finishRow(id: string): Promise<void> {
    try {
      await this.opts.db.query(`UPDATE connections SET state = 'used' WHERE id = $1 AND state = 'in-use'`, [
        id,
      ]);
    } catch (e) {
      this.log(
        `connections: could not mark ${id} used (${messageOf(e)}); it stays in-use and never releases`,
      );
    }
  }

  private async whyNotTaken(id: string, now: Date): Promise<Exclude<TakeResult, { ok: true }>['reason']> {
    // An open row past its expiry is expired now (its keys cleared); anything else not open was used.
    const r = await this.opts.db.query<{ state: string }>(
      `UPDATE connections SET state = CASE WHEN state = 'open' THEN 'expired' ELSE state END,
                              sealed_keys = CASE WHEN state = 'open' THEN NULL ELSE sealed_keys END
       WHERE id = $1 AND (state <> 'open' OR expires_at <= $2)
       RETURNING state`,
      [id, now],
    );
    const state = r.rows[0]?.state;
    if (state === undefined) return 'unknown-connection';
    return state === 'expired' ? 'connection-expired' : 'connection-used';
  }

  private fromRow(row: Row): Connection {
    return {
      id: row.id,
      vmId: row.vm_id ?? undefined,
      policy: Number(row.policy),
      client: row.client,
      clientKey: row.client_key,
      profileRevision: row.profile_revision ?? undefined,
      chipId: row.chip_id ?? undefined,
      anchor: row.anchor,
      createdAt: row.created_at.getTime(),
      expiresAt: row.expires_at.getTime(),
      state: row.state,
      tek: undefined,
      tik: undefined,
    };
  }
}
