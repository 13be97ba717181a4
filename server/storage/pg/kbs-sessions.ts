/**
 * SEV-SNP guests' KBS sessions in the shared database (serve --database), so a guest's /auth, /attest and
 * /resource may each reach another replica (docs/scale-out.md). The row id is the SHA-256 of the cookie:
 * the database never holds a cookie a reader could present. What a session knows (the nonce, then the
 * attested guest: its tee-pubkey, the profile it is bound to, the token's expiry) is sealed under the
 * service key bound to (kbs_sessions, id, state), so a sealed value moved to another row or state does
 * not open. The single-use attest is one statement (challenged -> attesting, exactly one caller sees the
 * row challenged); the caps are counted in the database, in the same statement as the insert.
 */
import { createHash } from 'node:crypto';
import {
  restoreSnpGuest,
  snpGuestRecord,
  type SnpGuestRecord,
  type VerifiedSnpGuest,
} from '../../../app/decision/snp';
import { DomainError, messageOf } from '../../../app/errors';
import type {
  KbsOpenResult,
  KbsSession,
  KbsSessionCaps,
  KbsSessionState,
  KbsSessionStore,
} from '../../services/kbs-sessions';
import type { Database } from './database';
import type { RowCipher } from './row-cipher';

const TABLE = 'kbs_sessions';

/** What is sealed: the nonce, and once attested the guest. */
interface SealedBody {
  nonce: string;
  guest?: SnpGuestRecord;
}

interface Row {
  id: string;
  client_group: string;
  state: KbsSessionState;
  created_at: Date;
  expires_at: Date;
  sealed: Buffer | null;
}

/** The state a row's value was sealed in: the nonce at auth, the guest at attest. */
const sealedState = (s: KbsSessionState): 'challenged' | 'attested' =>
  s === 'attested' ? 'attested' : 'challenged';

export interface PgKbsSessionStoreOptions {
  db: Database;
  cipher: RowCipher;
  now?: () => number;
}

export class PgKbsSessionStore implements KbsSessionStore {
  private readonly now: () => number;
  private lastCount = 0;

  constructor(private readonly opts: PgKbsSessionStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.lastCount;
  }

  /** The row id of a cookie. */
  static rowId(cookie: string): string {
    return createHash('sha256').update(cookie, 'utf8').digest('hex');
  }

  async open(s: Omit<KbsSession, 'state' | 'guest'>, caps: KbsSessionCaps): Promise<KbsOpenResult> {
    const id = PgKbsSessionStore.rowId(s.id);
    const sealed = this.seal(id, 'challenged', { nonce: s.nonce });
    const now = new Date(this.now());
    // Counted and inserted in one statement (the caps are a flood guard, not an invariant: two replicas
    // racing may pass one over).
    const r = await this.opts.db.query(
      `INSERT INTO kbs_sessions (id, client_group, state, created_at, expires_at, sealed)
       SELECT $1, $2, 'challenged', $3, $4, $5
       WHERE (SELECT count(*) FROM kbs_sessions WHERE state <> 'spent' AND expires_at > $6) < $7
         AND (SELECT count(*) FROM kbs_sessions
              WHERE client_group = $2 AND state <> 'spent' AND expires_at > $6) < $8`,
      [
        id,
        s.group,
        new Date(s.createdAt),
        new Date(s.expiresAt),
        sealed,
        now,
        caps.maxSessions,
        caps.maxPerClient,
      ],
    );
    if (r.rowCount === 1) return { ok: true };
    const c = await this.opts.db.query<{
      total: number;
      in_group: number;
      soonest_all: Date | null;
      soonest_group: Date | null;
    }>(
      `SELECT count(*)::int AS total,
              (count(*) FILTER (WHERE client_group = $2))::int AS in_group,
              min(expires_at) AS soonest_all,
              min(expires_at) FILTER (WHERE client_group = $2) AS soonest_group
       FROM kbs_sessions WHERE state <> 'spent' AND expires_at > $1`,
      [now, s.group],
    );
    const row = c.rows[0]!;
    this.lastCount = row.total;
    const whole = row.total >= caps.maxSessions;
    const soonest = whole ? row.soonest_all : row.soonest_group;
    return {
      ok: false,
      whole,
      open: whole ? row.total : row.in_group,
      retryAfterSeconds: soonest ? Math.max(1, Math.ceil((soonest.getTime() - now.getTime()) / 1000)) : 1,
    };
  }

  async get(cookie: string): Promise<KbsSession | undefined> {
    const id = PgKbsSessionStore.rowId(cookie);
    const r = await this.opts.db.query<Row>('SELECT * FROM kbs_sessions WHERE id = $1', [id]);
    const row = r.rows[0];
    if (!row) return undefined;
    const body: SealedBody | undefined = row.sealed
      ? this.unseal(row.id, sealedState(row.state), row.sealed)
      : undefined;
    return {
      id: cookie,
      group: row.client_group,
      nonce: body?.nonce ?? '',
      state: row.state,
      createdAt: row.created_at.getTime(),
      expiresAt: row.expires_at.getTime(),
      ...(row.state === 'attested' && body?.guest ? { guest: restoreSnpGuest(body.guest) } : {}),
    };
  }

  async beginAttest(cookie: string): Promise<boolean> {
    // READ COMMITTED re-checks the WHERE on a row another replica just changed: one caller wins.
    const r = await this.opts.db.query(
      `UPDATE kbs_sessions SET state = 'attesting' WHERE id = $1 AND state = 'challenged' RETURNING id`,
      [PgKbsSessionStore.rowId(cookie)],
    );
    return r.rowCount === 1;
  }

  async attested(cookie: string, guest: VerifiedSnpGuest, expiresAt: number): Promise<void> {
    const id = PgKbsSessionStore.rowId(cookie);
    const r = await this.opts.db.query<{ sealed: Buffer }>(
      `SELECT sealed FROM kbs_sessions WHERE id = $1 AND state = 'attesting'`,
      [id],
    );
    const row = r.rows[0];
    if (!row) throw new DomainError('internal', 'the KBS session left the attesting state during its attest');
    const { nonce } = this.unseal(id, 'challenged', row.sealed);
    const sealed = this.seal(id, 'attested', { nonce, guest: snpGuestRecord(guest) });
    const u = await this.opts.db.query(
      `UPDATE kbs_sessions SET state = 'attested', sealed = $2, expires_at = $3
       WHERE id = $1 AND state = 'attesting'`,
      [id, sealed, new Date(expiresAt)],
    );
    if (u.rowCount !== 1)
      throw new DomainError('internal', 'the KBS session left the attesting state during its attest');
  }

  async spend(cookie: string): Promise<void> {
    await this.opts.db.query(
      `UPDATE kbs_sessions SET state = 'spent', sealed = NULL WHERE id = $1 AND state = 'attesting'`,
      [PgKbsSessionStore.rowId(cookie)],
    );
  }

  async drop(cookie: string): Promise<void> {
    await this.opts.db.query('DELETE FROM kbs_sessions WHERE id = $1', [PgKbsSessionStore.rowId(cookie)]);
  }

  async sweep(now: number): Promise<void> {
    await this.opts.db.query(`DELETE FROM kbs_sessions WHERE expires_at <= $1 OR state = 'spent'`, [
      new Date(now),
    ]);
    const r = await this.opts.db.query<{ n: number }>('SELECT count(*)::int AS n FROM kbs_sessions');
    this.lastCount = r.rows[0]?.n ?? 0;
  }

  close(): void {
    // The rows are the deployment's, not this replica's: they stay for the other replicas.
  }

  private seal(id: string, state: 'challenged' | 'attested', body: SealedBody): Buffer {
    const plain = Buffer.from(JSON.stringify(body), 'utf8');
    try {
      return this.opts.cipher.seal({ table: TABLE, id, state }, plain);
    } finally {
      plain.fill(0);
    }
  }

  private unseal(id: string, state: 'challenged' | 'attested', sealed: Buffer): SealedBody {
    const plain = this.opts.cipher.open({ table: TABLE, id, state }, sealed);
    try {
      return JSON.parse(plain.toString('utf8')) as SealedBody;
    } catch (e) {
      throw new DomainError('row-undecryptable', `kbs_sessions row ${id}: ${messageOf(e)}`);
    } finally {
      plain.fill(0);
    }
  }
}
