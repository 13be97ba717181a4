import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database, DatabaseUnavailable } from '../../server/storage/pg/database';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from '../../server/storage/pg/migrations';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => cluster?.stop());

describe('schema migrations on real PostgreSQL', () => {
  it('three replicas starting at once migrate exactly once (advisory lock)', async () => {
    const url = await cluster.createDatabase();
    const dbs = [0, 1, 2].map(() => new Database({ url }));
    try {
      const reports = await Promise.all(dbs.map((db) => migrate(db)));
      expect(reports.flatMap((r) => r.applied)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(reports.every((r) => r.to === SCHEMA_VERSION)).toBe(true);
      const rows = await dbs[0]!.query('SELECT version FROM schema_version ORDER BY version');
      expect(rows.rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      // Started again: nothing to apply.
      expect((await migrate(dbs[1]!)).applied).toEqual([]);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  });

  it('a replica older than the schema refuses to start with a clear sentence', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await migrate(db, [
        ...MIGRATIONS,
        { version: SCHEMA_VERSION + 1, name: 'future', sql: 'CREATE TABLE f (x int)' },
      ]);
      await expect(migrate(db)).rejects.toMatchObject({
        code: 'database-schema',
        message: expect.stringMatching(
          new RegExp(
            `schema is version ${SCHEMA_VERSION + 1}, newer than this sev-attest's \\(version ${SCHEMA_VERSION}\\)`,
          ),
        ),
      });
    } finally {
      await db.close();
    }
  });

  it('a failing migration leaves nothing half-applied', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await expect(
        migrate(db, [
          ...MIGRATIONS,
          {
            version: SCHEMA_VERSION + 1,
            name: 'broken',
            sql: 'CREATE TABLE half (x int); SELECT * FROM nowhere',
          },
        ]),
      ).rejects.toThrow(/nowhere/);
      const t = await db.query("SELECT to_regclass('half') AS t");
      expect(t.rows[0]?.t).toBeNull();
      expect((await db.query('SELECT max(version) AS v FROM schema_version')).rows[0]?.v).toBe(
        SCHEMA_VERSION,
      );
    } finally {
      await db.close();
    }
  });

  it('the audit table refuses UPDATE, DELETE and TRUNCATE', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await migrate(db);
      await db.query(
        "INSERT INTO audit_log (seq, id, time, body, prev_hash, hash) VALUES (1, 'a', now(), '{}', '\\x00', '\\x00')",
      );
      await expect(db.query('UPDATE audit_log SET body = \'{"x":1}\'')).rejects.toThrow(/append-only/);
      await expect(db.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
      await expect(db.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
    } finally {
      await db.close();
    }
  });
});

describe('losing the database', () => {
  it('answers DatabaseUnavailable (503, Retry-After) while it is down and reconnects by itself', async () => {
    const own = await startPgCluster();
    const url = await own.createDatabase();
    const db = new Database({ url, connectTimeoutMs: 1000 });
    try {
      await migrate(db);
      expect((await db.query('SELECT 1 AS x')).rows[0]?.x).toBe(1);
      own.stopServer();
      const err = await db.query('SELECT 1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseUnavailable);
      expect(err).toMatchObject({ code: 'database-unavailable', retryAfterSeconds: 5 });
      const tx = await db
        .transaction(async (c) => c.query('INSERT INTO connections DEFAULT VALUES'))
        .catch((e: unknown) => e);
      expect(tx).toBeInstanceOf(DatabaseUnavailable);
      own.startServer();
      expect((await db.query('SELECT 2 AS x')).rows[0]?.x).toBe(2);
    } finally {
      await db.close();
      own.stop();
    }
  });
});
