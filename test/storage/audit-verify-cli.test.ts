import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../cli/io';
import { runCli } from '../../cli/run';
import { PgAuditChain } from '../../server/storage/pg/audit-chain';
import { Database } from '../../server/storage/pg/database';
import { migrate } from '../../server/storage/pg/migrations';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => cluster?.stop());

function capture(env: NodeJS.ProcessEnv = {}): CliIo & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env,
    cwd: process.cwd(),
    stdout: () => out,
    stderr: () => err,
  };
}

describe('sev-attest audit verify --database', () => {
  it('exit 0 on an intact chain, 1 naming the first tampered row, 69 when the database is down', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await migrate(db);
      const chain = new PgAuditChain(db);
      for (let i = 0; i < 5; i++) await chain.append({ type: 'listener', result: 'info', message: `m${i}` });

      const ok = capture();
      expect(await runCli(['audit', 'verify', '--database', url], ok)).toBe(0);
      expect(ok.stdout()).toMatch(/^audit chain intact: 5 rows; head seq 5 hash [0-9a-f]{64}\n$/);

      const viaEnv = capture({ SEV_ATTEST_DATABASE_URL: url });
      expect(await runCli(['audit', 'verify', '--json'], viaEnv)).toBe(0);
      expect(JSON.parse(viaEnv.stdout())).toMatchObject({ ok: true, rows: 5 });

      await db.transaction(async (c) => {
        await c.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
        await c.query("UPDATE audit_log SET body = replace(body, 'm2', 'mX') WHERE seq = 3");
        await c.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
      });
      const broken = capture();
      expect(await runCli(['audit', 'verify', '--database', url], broken)).toBe(1);
      expect(broken.stdout()).toMatch(/audit chain BROKEN at row 3: its content does not match its hash/);
    } finally {
      await db.close();
    }
    const empty = capture();
    expect(await runCli(['audit', 'verify', '--database', cluster.url], empty)).toBe(1);
    expect(empty.stderr()).toMatch(/no sev-attest audit table/);

    const down = capture();
    const closedPort = cluster.url.replace(/:(\d+)\//, ':1/');
    expect(await runCli(['audit', 'verify', '--database', closedPort], down)).toBe(69);
    expect(down.stderr()).toMatch(/the database is unavailable/);

    const usage = capture();
    expect(await runCli(['audit', 'verify'], usage)).toBe(2);
    expect(usage.stderr()).toMatch(/--database URL is required/);
  });
});
