/**
 * The built `sev-attest serve --database` refuses clearly what it cannot do: a missing or readable service
 * key, --secret-store with --database, a database it cannot reach (exit 69), a schema newer than its own.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../server/storage/pg/database';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from '../../server/storage/pg/migrations';
import { buildCliPackage } from '../helpers/built-cli';
import { tmpDir } from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let entry = '';
let cluster: PgCluster;
let keyFile = '';
const dirs: string[] = [];
beforeAll(async () => {
  const pkg = buildCliPackage('sev-dbcli-');
  dirs.push(pkg.pkgDir);
  entry = pkg.entry;
  cluster = await startPgCluster();
  const d = tmpDir('sev-key-');
  dirs.push(d);
  keyFile = join(d, 'service.key');
  fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
}, 120_000);
afterAll(() => {
  cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function serve(args: string[], env: Record<string, string> = {}) {
  const clean = { ...process.env, ...env };
  delete clean.SEV_ATTEST_OWNER_TOKEN;
  if (!('SEV_ATTEST_SERVICE_KEY' in env)) delete clean.SEV_ATTEST_SERVICE_KEY;
  const dataDir = tmpDir('sev-dbcli-data-');
  dirs.push(dataDir);
  return spawnSync(
    process.execPath,
    [entry, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...args],
    {
      encoding: 'utf8',
      env: clean,
      timeout: 30_000,
    },
  );
}

function expectRefused(r: ReturnType<typeof serve>, status: number, pattern: RegExp): void {
  expect(r.status, r.stderr).toBe(status);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
}

describe('sev-attest serve --database refusals', () => {
  it('no service key, a key file others can read, --secret-store alongside, a key file without --database', async () => {
    const url = await cluster.createDatabase();
    expectRefused(serve(['--database', url]), 2, /--database needs the service key: --service-key-file FILE/);
    const loose = join(tmpDir('sev-key-'), 'loose.key');
    dirs.push(join(loose, '..'));
    fs.writeFileSync(loose, randomBytes(32).toString('base64'));
    fs.chmodSync(loose, 0o644);
    expectRefused(
      serve(['--database', url, '--service-key-file', loose]),
      2,
      /readable by others \(mode 644\): chmod 600/,
    );
    expectRefused(
      serve(['--database', url, '--service-key-file', keyFile, '--secret-store', 'memory']),
      2,
      /--secret-store cannot be combined with --database/,
    );
    expectRefused(
      serve(['--service-key-file', keyFile, '--secret-store', 'memory']),
      2,
      /--service-key-file goes with --database/,
    );
    expectRefused(
      serve(['--database', 'mysql://x'], { SEV_ATTEST_SERVICE_KEY: randomBytes(32).toString('hex') }),
      2,
      /must be a postgres:\/\/ URL/,
    );
  });

  it('a database it cannot reach: exit 69 with the reason', () => {
    const closed = cluster.url.replace(/:(\d+)\//, ':1/');
    expectRefused(
      serve(['--database', closed, '--service-key-file', keyFile]),
      69,
      /the database is unavailable \(connect ECONNREFUSED/,
    );
  });

  it('a schema newer than this release: refuses to start and says why', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await migrate(db, [...MIGRATIONS, { version: SCHEMA_VERSION + 1, name: 'next', sql: 'SELECT 1' }]);
    } finally {
      await db.close();
    }
    expectRefused(
      serve(['--database', url, '--service-key-file', keyFile]),
      1,
      new RegExp(
        `schema is version ${SCHEMA_VERSION + 1}, newer than this sev-attest's \\(version ${SCHEMA_VERSION}\\)`,
      ),
    );
  });
});
