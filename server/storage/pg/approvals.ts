/**
 * Owner approvals shared by every replica (serve --database). Each replica keeps its ApprovalService (the
 * in-memory view its UI, event stream and launches read); this replication writes every local change to
 * table `approvals` and NOTIFYs the others, which fetch the row and apply it (ApprovalService.applyRemote),
 * so a request made on one replica is on every replica's UI within milliseconds and a decision taken on
 * any replica unblocks the host whichever replica its repeated request reaches. States only move forward
 * (pending -> approved/denied -> used) in the database too; spending an approval is one atomic UPDATE.
 */
import { randomUUID } from 'node:crypto';
import { messageOf } from '../../../app/errors';
import type { Approval, ApprovalReplication, ApprovalService } from '../../services/approvals';
import type { Database } from './database';
import type { Notifier } from './notifier';

export const APPROVAL_CHANNEL = 'sev_attest_approvals';

const RANK = `CASE state WHEN 'pending' THEN 0 WHEN 'used' THEN 2 ELSE 1 END`;

export class PgApprovalReplication implements ApprovalReplication {
  /** Tells this replica's own notifications from the others'. */
  private readonly origin = randomUUID();
  private service: ApprovalService | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly notifier: Notifier,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** Binds the service, loads what other replicas hold (pending and recently decided) and follows them. */
  async attach(service: ApprovalService): Promise<void> {
    this.service = service;
    this.notifier.on(APPROVAL_CHANNEL, (payload) => {
      const [origin, id, forgotten] = payload.split('\n');
      if (origin === this.origin || !id) return;
      void this.fetch(id, forgotten === 'forgotten').catch((e: unknown) =>
        this.log(`approvals: could not read ${id} (${messageOf(e)})`),
      );
    });
    this.notifier.onReconnect(() => void this.loadAll().catch(() => {}));
    await this.notifier.listening(APPROVAL_CHANNEL);
    await this.loadAll();
  }

  publish(a: Approval, forgotten = false): void {
    const p = this.write(a, forgotten).catch((e: unknown) =>
      this.log(`approvals: ${a.id} (${a.state}) not shared with the other replicas (${messageOf(e)})`),
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  async claim(id: string): Promise<boolean> {
    // Any local publish of this approval first: the row must exist before it can be claimed.
    await Promise.all([...this.inFlight]);
    const r = await this.db.transaction(async (c) => {
      const u = await c.query(
        `UPDATE approvals SET state = 'used', body = jsonb_set(body, '{state}', '"used"')
         WHERE id = $1 AND state = 'approved' RETURNING id`,
        [id],
      );
      if (u.rowCount === 1)
        await c.query('SELECT pg_notify($1, $2)', [APPROVAL_CHANNEL, `${this.origin}\n${id}`]);
      return u.rowCount === 1;
    });
    return r;
  }

  /** Waits for the writes in flight (shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async write(a: Approval, forgotten: boolean): Promise<void> {
    await this.db.transaction(async (c) => {
      if (forgotten) {
        await c.query('DELETE FROM approvals WHERE id = $1', [a.id]);
      } else {
        await c.query(
          `INSERT INTO approvals (id, fingerprint, state, expires_at, body)
           VALUES ($1, $2, $3, $4, $5::jsonb)
           ON CONFLICT (id) DO UPDATE
             SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at, body = EXCLUDED.body
             WHERE (${RANK.replace(/state/g, 'approvals.state')}) < (${RANK.replace(/state/g, 'EXCLUDED.state')})`,
          [a.id, a.fingerprint, a.state, new Date(a.expiresAt), JSON.stringify(a)],
        );
      }
      await c.query('SELECT pg_notify($1, $2)', [
        APPROVAL_CHANNEL,
        `${this.origin}\n${a.id}${forgotten ? '\nforgotten' : ''}`,
      ]);
    });
  }

  private async fetch(id: string, forgotten: boolean): Promise<void> {
    if (!this.service) return;
    const r = await this.db.query<{ body: Approval }>('SELECT body FROM approvals WHERE id = $1', [id]);
    const row = r.rows[0];
    if (!row) {
      if (forgotten) this.service.applyRemote({ id } as Approval, true);
      return;
    }
    this.service.applyRemote(row.body);
  }

  private async loadAll(): Promise<void> {
    if (!this.service) return;
    // Decided approvals are kept until their expiry (the host picks the decision up); old rows go.
    await this.db.query(`DELETE FROM approvals WHERE expires_at < now() - interval '1 hour'`);
    const r = await this.db.query<{ body: Approval }>(
      "SELECT body FROM approvals WHERE expires_at > now() ORDER BY (body->>'createdAt')::bigint",
    );
    for (const row of r.rows) this.service.applyRemote(row.body);
  }
}
