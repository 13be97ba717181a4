import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainHash, PgAuditChain } from '../../server/storage/pg/audit-chain';
import { Database } from '../../server/storage/pg/database';
import { migrate } from '../../server/storage/pg/migrations';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => cluster?.stop());

/** A database with `n` events appended by three replicas at once. */
async function chainOf(n: number): Promise<{ dbs: Database[]; url: string }> {
  const url = await cluster.createDatabase();
  const dbs = [0, 1, 2].map(() => new Database({ url }));
  await migrate(dbs[0]!);
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new PgAuditChain(dbs[i % 3]!).append({
        type: 'validate',
        result: 'ok',
        client: `10.0.0.${i % 3}:5000`,
        message: `event ${i}`,
        details: { i, tek: 'c2VjcmV0IGtleSBtYXRlcmlhbA==' },
      }),
    ),
  );
  return { dbs, url };
}

/** Runs SQL as the table's owner with the append-only triggers off: what an attacker with the role can do. */
async function tamper(db: Database, sql: string, params: unknown[] = []): Promise<void> {
  await db.transaction(async (c) => {
    await c.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
    await c.query(sql, params);
    await c.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
  });
}

describe('hash-chained audit table on real PostgreSQL', () => {
  it('three replicas appending at once build one gap-free chain that verifies', async () => {
    const { dbs } = await chainOf(60);
    try {
      const chain = new PgAuditChain(dbs[1]!);
      const verdict = await chain.verify(7);
      expect(verdict).toMatchObject({ ok: true, rows: 60, head: { seq: 60 } });
      const events = await chain.listAfter(0);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      // Redacted as in the file log: a secret-looking value never reaches the table.
      expect(events[0]!.details).toMatchObject({ tek: '[redacted]', redacted: ['tek'] });
      const raw = await dbs[0]!.query(
        "SELECT count(*)::int AS n FROM audit_log WHERE body LIKE '%c2VjcmV0%'",
      );
      expect(raw.rows[0]?.n).toBe(0);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('names the first changed row', async () => {
    const { dbs } = await chainOf(20);
    try {
      await tamper(dbs[0]!, "UPDATE audit_log SET body = replace(body, 'event', 'EVENT') WHERE seq = 5");
      expect(await new PgAuditChain(dbs[0]!).verify()).toMatchObject({
        ok: false,
        firstBroken: 5,
        reason: expect.stringMatching(/content does not match its hash: the row was changed/),
      });
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('a row changed with its own hash recomputed breaks the link to the next row', async () => {
    const { dbs } = await chainOf(20);
    try {
      const row = await dbs[0]!.query<{ body: string; prev_hash: Buffer }>(
        'SELECT body, prev_hash FROM audit_log WHERE seq = 8',
      );
      const body = row.rows[0]!.body.replace('"result":"ok"', '"result":"refused"');
      await tamper(dbs[0]!, 'UPDATE audit_log SET body = $1, hash = $2 WHERE seq = 8', [
        body,
        chainHash(row.rows[0]!.prev_hash, body),
      ]);
      expect(await new PgAuditChain(dbs[0]!).verify()).toMatchObject({
        ok: false,
        firstBroken: 9,
        reason: expect.stringMatching(/prev_hash is not the hash of row 8/),
      });
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('names a deleted row', async () => {
    const { dbs } = await chainOf(20);
    try {
      await tamper(dbs[0]!, 'DELETE FROM audit_log WHERE seq = 13');
      expect(await new PgAuditChain(dbs[0]!).verify(5)).toMatchObject({
        ok: false,
        firstBroken: 13,
        reason: expect.stringMatching(/row 13 is missing/),
      });
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });
});
