/**
 * The audit log of a scale-out deployment: an append-only table (triggers refuse UPDATE, DELETE and
 * TRUNCATE; migrations.ts) whose rows are hash-chained: row n stores
 * hash_n = SHA-256(hash_{n-1} || canonical JSON of event n), hash_0 = 32 zero bytes. Every replica appends to
 * the one chain: an append takes a transaction-level advisory lock, reads the head and inserts the next
 * row, so seq has no gaps and each row commits whole or not at all. verify() walks the chain and names
 * the first row that does not follow (changed, deleted, inserted or reordered).
 *
 * What the chain cannot show on its own: removal of the newest rows, or a rewrite of every row from one
 * point on by someone who can write the table. verify() prints the head (seq and hash): an owner who
 * records it elsewhere (a ticket, a log shipper) can later check that the chain still reaches it.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventInput } from '../../../app/audit';
import { normalizeAuditInput } from '../../services/audit-log';
import type { Database } from './database';

/** pg_advisory_xact_lock key of the chain's head. */
export const AUDIT_CHAIN_LOCK_KEY = 0x5345564154_02;
/** NOTIFY channel: every replica's event stream hears new rows (payload: the seq). */
export const AUDIT_CHANNEL = 'sev_attest_audit';
export const GENESIS_HASH = Buffer.alloc(32);

/** JSON with object keys sorted at every level (RFC 8785 for the values an audit event holds). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value))
    return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function chainHash(prev: Uint8Array, body: string): Buffer {
  return createHash('sha256').update(prev).update(body, 'utf8').digest();
}

/** The event as a caller gives it, checked and redacted as the file log does. */
export function auditBody(input: AuditEventInput): AuditEventInput {
  return normalizeAuditInput(input);
}

export type ChainVerdict =
  | { ok: true; rows: number; head: { seq: number; hash: string } | undefined }
  | { ok: false; rows: number; firstBroken: number; reason: string };

/** The audit chain in the shared database. */
export class PgAuditChain {
  constructor(
    private readonly db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Appends one event (committed when this resolves) and notifies every replica. */
  async append(input: AuditEventInput): Promise<AuditEvent> {
    const body = auditBody(input);
    return this.db.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_CHAIN_LOCK_KEY]);
      const head = await c.query<{ seq: string; hash: Buffer }>(
        'SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1',
      );
      const prev = head.rows[0];
      const event: AuditEvent = {
        id: randomUUID(),
        seq: prev ? Number(prev.seq) + 1 : 1,
        time: this.now().toISOString(),
        ...body,
      };
      const text = canonicalJson(event);
      const prevHash = prev ? prev.hash : GENESIS_HASH;
      await c.query(
        'INSERT INTO audit_log (seq, id, time, body, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6)',
        [event.seq, event.id, event.time, text, prevHash, chainHash(prevHash, text)],
      );
      await c.query('SELECT pg_notify($1, $2)', [AUDIT_CHANNEL, String(event.seq)]);
      return event;
    });
  }

  /** Events with seq > after, oldest first (at most limit). */
  async listAfter(after: number, limit = 1000): Promise<AuditEvent[]> {
    const r = await this.db.query<{ body: string }>(
      'SELECT body FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2',
      [after, limit],
    );
    return r.rows.map((row) => JSON.parse(row.body) as AuditEvent);
  }

  /** The newest `limit` events, oldest first. */
  async listRecent(limit: number): Promise<AuditEvent[]> {
    const r = await this.db.query<{ body: string }>(
      'SELECT body FROM (SELECT seq, body FROM audit_log ORDER BY seq DESC LIMIT $1) t ORDER BY seq',
      [limit],
    );
    return r.rows.map((row) => JSON.parse(row.body) as AuditEvent);
  }

  /** Walks the whole chain in pages; the first row that does not follow ends the walk. */
  async verify(pageSize = 2000): Promise<ChainVerdict> {
    let prevHash: Buffer = GENESIS_HASH;
    let expectSeq = 1;
    let rows = 0;
    for (;;) {
      const page = await this.db.query<{
        seq: string;
        id: string;
        time: Date;
        body: string;
        prev_hash: Buffer;
        hash: Buffer;
      }>('SELECT seq, id, time, body, prev_hash, hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2', [
        expectSeq,
        pageSize,
      ]);
      for (const r of page.rows) {
        const seq = Number(r.seq);
        const broken = (reason: string): ChainVerdict => ({ ok: false, rows, firstBroken: seq, reason });
        if (seq !== expectSeq) {
          return {
            ok: false,
            rows,
            firstBroken: expectSeq,
            reason: `row ${expectSeq} is missing (the next row is ${seq}): rows were deleted`,
          };
        }
        if (!r.prev_hash.equals(prevHash)) return broken(`its prev_hash is not the hash of row ${seq - 1}`);
        if (!chainHash(prevHash, r.body).equals(r.hash))
          return broken('its content does not match its hash: the row was changed');
        let event: AuditEvent;
        try {
          event = JSON.parse(r.body) as AuditEvent;
        } catch {
          return broken('its body is not JSON');
        }
        if (event.seq !== seq || event.id !== r.id || Date.parse(event.time) !== r.time.getTime())
          return broken('its seq, id or time columns differ from the hashed event');
        prevHash = r.hash;
        expectSeq++;
        rows++;
      }
      if (page.rows.length < pageSize) break;
    }
    return {
      ok: true,
      rows,
      head: rows > 0 ? { seq: expectSeq - 1, hash: prevHash.toString('hex') } : undefined,
    };
  }
}
