/**
 * Secret values in the shared database (serve --database), sealed under the service key and bound to
 * their account (secrets | account | 'stored'): a value copied to another account's row does not open.
 * The same SecretStore interface as the OS keychain, so SecretService and the release path are unchanged.
 */
import { wipe } from '../../../app/sev/bytes';
import { validateAccount, validateValue, type SecretStore } from '../../services/secret-store';
import type { Database } from './database';
import { RowCipher } from './row-cipher';

const TABLE = 'secrets';

/** The account as it appears in the associated data (base64url: no separator can occur in it). */
function place(account: string) {
  return { table: TABLE, id: Buffer.from(account, 'utf8').toString('base64url'), state: 'stored' };
}

export class PgSecretStore implements SecretStore {
  readonly kind = 'database' as const;
  readonly description = 'the shared PostgreSQL database (values sealed under the service key)';

  constructor(
    private readonly db: Database,
    private readonly cipher: RowCipher,
  ) {}

  async get(account: string): Promise<Uint8Array | undefined> {
    validateAccount(account);
    const r = await this.db.query<{ sealed: Buffer }>('SELECT sealed FROM secrets WHERE account = $1', [
      account,
    ]);
    const row = r.rows[0];
    if (!row) return undefined;
    const plain = this.cipher.open(place(account), row.sealed);
    const out = Uint8Array.from(plain);
    wipe(plain);
    return out;
  }

  async set(account: string, value: Uint8Array): Promise<void> {
    validateAccount(account);
    validateValue(value);
    const sealed = this.cipher.seal(place(account), value);
    await this.db.query(
      `INSERT INTO secrets (account, sealed, updated_at) VALUES ($1, $2, now())
       ON CONFLICT (account) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()`,
      [account, sealed],
    );
  }

  async delete(account: string): Promise<boolean> {
    validateAccount(account);
    const r = await this.db.query('DELETE FROM secrets WHERE account = $1', [account]);
    return (r.rowCount ?? 0) > 0;
  }

  async list(prefix = ''): Promise<string[]> {
    const r = await this.db.query<{ account: string }>(
      'SELECT account FROM secrets WHERE starts_with(account, $1) ORDER BY account COLLATE "C"',
      [prefix],
    );
    return r.rows.map((x) => x.account);
  }

  async probeWritable(): Promise<void> {
    await this.db.query('SELECT 1');
  }
}

/**
 * Re-seals every secret value not sealed under the current (first) service key, in one transaction with
 * the rows locked: after a rotation, once this reports nothing left under the old key (and connections
 * older than their lifetime are gone), the old key can be removed. Returns counts per outcome.
 */
export async function resealSecrets(
  db: Database,
  cipher: RowCipher,
): Promise<{ resealed: number; current: number }> {
  return db.transaction(async (c) => {
    const rows = await c.query<{ account: string; sealed: Buffer }>(
      'SELECT account, sealed FROM secrets ORDER BY account FOR UPDATE',
    );
    let resealed = 0;
    for (const row of rows.rows) {
      if (RowCipher.keyIdOf(row.sealed) === cipher.sealingKeyId) continue;
      const plain = cipher.open(place(row.account), row.sealed);
      try {
        await c.query('UPDATE secrets SET sealed = $2, updated_at = now() WHERE account = $1', [
          row.account,
          cipher.seal(place(row.account), plain),
        ]);
      } finally {
        wipe(plain);
      }
      resealed++;
    }
    return { resealed, current: rows.rows.length - resealed };
  });
}

/** How many sealed values (secrets, open connections) each service key id seals. */
export async function sealedByKey(
  db: Database,
): Promise<Array<{ table: string; keyId: string; rows: number }>> {
  const r = await db.query<{ t: string; key_id: string; n: number }>(
    `SELECT 'secrets' AS t, encode(substring(sealed from 2 for 8), 'hex') AS key_id, count(*)::int AS n
       FROM secrets GROUP BY 2
     UNION ALL
     SELECT 'connections', encode(substring(sealed_keys from 2 for 8), 'hex'), count(*)::int
       FROM connections WHERE sealed_keys IS NOT NULL GROUP BY 2
     ORDER BY 1, 2`,
  );
  return r.rows.map((x) => ({ table: x.t, keyId: x.key_id, rows: x.n }));
}
