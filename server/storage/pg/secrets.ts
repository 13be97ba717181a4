/**
 * Secret values in the shared database (serve --database), sealed under the service key and bound to
 * their account (secrets | account | 'stored'): a value copied to another account's row does not open.
 * The same SecretStore interface as the OS keychain, so SecretService and the release path are unchanged.
 */
import { wipe } from '../../../app/sev/bytes';
import { validateAccount, validateValue, type SecretStore } from '../../services/secret-store';
import type { Database } from './database';
import type { RowCipher } from './row-cipher';

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
