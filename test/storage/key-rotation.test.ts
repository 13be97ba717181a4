/**
 * Service key rotation on real PostgreSQL (docs/scale-out.md "Rotation"): replicas given "new, old" read
 * values sealed under either; `sev-attest database reseal` re-seals every secret under the new key, after
 * which the old key can go.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../cli/io';
import { runCli } from '../../cli/run';
import { Database } from '../../server/storage/pg/database';
import { migrate } from '../../server/storage/pg/migrations';
import { RowCipher } from '../../server/storage/pg/row-cipher';
import { PgSecretStore } from '../../server/storage/pg/secrets';
import { parseServiceKey } from '../../server/storage/pg/service-key';
import { tmpDir } from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
const dirs: string[] = [];
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => {
  cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function capture(): CliIo & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
    cwd: process.cwd(),
    stdout: () => out,
    stderr: () => err,
  };
}

describe('service key rotation', () => {
  it('new-then-old reads both; reseal moves every secret to the new key; then the old key can go', async () => {
    const url = await cluster.createDatabase();
    const db = new Database({ url });
    try {
      await migrate(db);
      const oldText = randomBytes(32).toString('base64');
      const newText = randomBytes(32).toString('hex');
      const oldKey = parseServiceKey(oldText, 'old');
      const newKey = parseServiceKey(newText, 'new');
      const before = new PgSecretStore(db, new RowCipher([oldKey]));
      await before.set('vm1/a', Buffer.from('alpha'));
      await before.set('vm2/b', Buffer.from('beta'));
      // Sealed to its account: a value copied under another account does not open.
      await db.query(
        "INSERT INTO secrets (account, sealed) SELECT 'vm3/c', sealed FROM secrets WHERE account = 'vm1/a'",
      );
      await expect(before.get('vm3/c')).rejects.toMatchObject({ code: 'row-undecryptable' });
      await before.delete('vm3/c');

      const rotated = new PgSecretStore(db, new RowCipher([newKey, oldKey]));
      expect(Buffer.from((await rotated.get('vm1/a'))!).toString()).toBe('alpha');
      await rotated.set('vm4/d', Buffer.from('delta'));

      const dir = tmpDir('sev-rotate-');
      dirs.push(dir);
      const keyFile = join(dir, 'service.key');
      fs.writeFileSync(keyFile, `# new first, then the old one\n${newText}\n${oldText}\n`, { mode: 0o600 });
      const status = capture();
      expect(await runCli(['database', 'status', '--database', url], status)).toBe(0);
      expect(status.stdout()).toContain(`secrets: 2 sealed under key ${oldKey.id.toString('hex')}`);
      expect(status.stdout()).toContain(`secrets: 1 sealed under key ${newKey.id.toString('hex')}`);
      const reseal = capture();
      expect(
        await runCli(['database', 'reseal', '--database', url, '--service-key-file', keyFile], reseal),
      ).toBe(0);
      expect(reseal.stdout()).toMatch(/resealed 2 secret value\(s\) under key [0-9a-f]{16}; 1 already were/);
      expect(reseal.stdout()).toContain(`secrets: 3 sealed under key ${newKey.id.toString('hex')}`);

      const after = new PgSecretStore(db, new RowCipher([newKey]));
      for (const [account, value] of [
        ['vm1/a', 'alpha'],
        ['vm2/b', 'beta'],
        ['vm4/d', 'delta'],
      ] as const) {
        expect(Buffer.from((await after.get(account))!).toString()).toBe(value);
      }
      await expect(before.get('vm1/a')).rejects.toMatchObject({ code: 'row-undecryptable' });
    } finally {
      await db.close();
    }
  });
});
