/**
 * Versioned schema migrations of the shared database, applied at start under a session advisory lock so
 * replicas starting together migrate once. `schema_version` records each applied version; a database
 * whose version is above this code's (a newer replica migrated it) makes an older replica refuse to start
 * with a sentence saying so. Each migration runs in its own transaction with its version row.
 */
import { DomainError } from '../../../app/errors';
import { isUnavailableError, translateError, type Database } from './database';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** pg_advisory_lock key of the migration step (an arbitrary constant: 'SEVAT' in ASCII, then 1). */
export const MIGRATION_LOCK_KEY = 0x5345564154_01;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'launch connections and the hash-chained audit log',
    sql: `
      CREATE TABLE connections (
        id uuid PRIMARY KEY,
        vm_id text,
        client text NOT NULL,
        client_key text NOT NULL,
        policy bigint NOT NULL,
        profile_revision text,
        chip_id text,
        anchor text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        state text NOT NULL CHECK (state IN ('open', 'in-use', 'used', 'expired')),
        -- TEK || TIK sealed under the service key, bound to (connections, id, 'open'); NULL once spent.
        sealed_keys bytea,
        CHECK ((state = 'open') = (sealed_keys IS NOT NULL))
      );
      CREATE INDEX connections_latest ON connections (vm_id, client_key, created_at DESC);
      CREATE INDEX connections_expiry ON connections (expires_at);

      CREATE TABLE audit_log (
        seq bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        time timestamptz NOT NULL,
        -- The canonical JSON (RFC 8785) of the whole event, exactly as hashed.
        body text NOT NULL,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL
      );
      -- Append-only for the service: rows are never changed or removed through it. (The table's owner can
      -- drop this trigger; the hash chain is what detects such a change: sev-attest audit verify.)
      CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    `,
  },
  {
    version: 2,
    name: 'secret values sealed under the service key',
    sql: `
      CREATE TABLE secrets (
        account text PRIMARY KEY,
        -- The value sealed under the service key, bound to (secrets, account, 'stored').
        sealed bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 3,
    name: 'shared JSON stores (VM profiles)',
    sql: `
      CREATE TABLE kv_store (
        store text NOT NULL,
        key text NOT NULL,
        value jsonb NOT NULL,
        -- Optimistic concurrency: a write names the version it replaces.
        version bigint NOT NULL,
        PRIMARY KEY (store, key)
      );
    `,
  },
  {
    version: 4,
    name: 'owner approvals shared by the replicas',
    sql: `
      CREATE TABLE approvals (
        id uuid PRIMARY KEY,
        fingerprint text NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'used')),
        expires_at timestamptz NOT NULL,
        -- The whole approval as the owner's UI shows it (no secret: what the host sent, hashed).
        body jsonb NOT NULL
      );
      CREATE INDEX approvals_expiry ON approvals (expires_at);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export interface MigrationReport {
  /** The version found before migrating (0: an empty database). */
  from: number;
  to: number;
  applied: number[];
}

/**
 * Brings the database to this code's schema. Refuses (database-schema) when the database is newer.
 * `migrations` is for tests of the refusal and of concurrent starts.
 */
export async function migrate(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  const target = migrations[migrations.length - 1]?.version ?? 0;
  const client = await db.connect();
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_version (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const found = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version');
      const from = found.rows[0]?.v ?? 0;
      if (from > target) {
        throw new DomainError(
          'database-schema',
          `the database's schema is version ${from}, newer than this sev-attest's (version ${target}): a ` +
            `newer sev-attest migrated it. Upgrade this replica to the same release as the others; it does not ` +
            `start on a schema it does not know`,
        );
      }
      const applied: number[] = [];
      for (const m of migrations) {
        if (m.version <= from) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_version (version, name) VALUES ($1, $2)', [
            m.version,
            m.name,
          ]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => (broken = true));
          throw e;
        }
        applied.push(m.version);
      }
      return { from, to: Math.max(from, target), applied };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => (broken = true));
    }
  } catch (e) {
    if (e instanceof DomainError) throw e;
    if (isUnavailableError(e)) broken = true;
    throw translateError(e);
  } finally {
    client.release(broken ? true : undefined);
  }
}
