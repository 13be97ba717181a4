/**
 * The PostgreSQL connection of `sev-attest serve --database URL`: a pg.Pool (a broken connection is dropped
 * and the next query opens a new one, so a replica reconnects by itself once the server is back), and the
 * one translation of "the database cannot be reached" into a DomainError `database-unavailable` that the
 * listener answers with 503 + Retry-After (app/contract/rest.ts ERROR_STATUS). Every write that must be
 * whole runs in one transaction (transaction()): a connection lost mid-way rolls it back, nothing is
 * half-written.
 */
import pg from 'pg';
import { DomainError, messageOf } from '../../../app/errors';

/** PostgreSQL cannot be reached (down, restarting, network): retry after a few seconds. */
export class DatabaseUnavailable extends DomainError<'database-unavailable'> {
  constructor(detail: string, retryAfterSeconds = 5) {
    super('database-unavailable', `the database is unavailable (${detail}); try again shortly`, {
      hostMessage: 'the service is temporarily unavailable; try again shortly',
      retryAfterSeconds,
    });
    this.name = 'DatabaseUnavailable';
  }
}

/** SQLSTATE classes and codes that mean the server or the connection went away, not a bad statement. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4])/;
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** True when the error says the database is unreachable (as opposed to a bug in a statement). */
export function isUnavailableError(e: unknown): boolean {
  if (e instanceof DatabaseUnavailable) return true;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_ERRNO.has(code) || UNAVAILABLE_SQLSTATE.test(code)))
    return true;
  const msg = messageOf(e);
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (starting up|shutting down)/i.test(
    msg,
  );
}

/** Rethrows an unreachable-database error as DatabaseUnavailable; anything else unchanged. */
export function translateError(e: unknown): unknown {
  if (e instanceof DatabaseUnavailable) return e;
  return isUnavailableError(e) ? new DatabaseUnavailable(messageOf(e)) : e;
}

export type Queryable = Pick<pg.PoolClient, 'query'>;

export interface DatabaseOptions {
  url: string;
  /** Pool size (default 10). */
  max?: number;
  /** How long a query waits for a connection before the database counts as unavailable (ms, default 3000). */
  connectTimeoutMs?: number;
  /** Per-statement limit (ms, default 15000): a hung server fails the request instead of holding it. */
  statementTimeoutMs?: number;
  log?: (line: string) => void;
}

/** One replica's pool on the shared database. */
export class Database {
  readonly pool: pg.Pool;
  private readonly log: (line: string) => void;
  private closed = false;

  constructor(readonly opts: DatabaseOptions) {
    this.log = opts.log ?? (() => {});
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 3000,
      statement_timeout: opts.statementTimeoutMs ?? 15_000,
      idleTimeoutMillis: 30_000,
      application_name: 'sev-attest',
    });
    // An idle connection cut by a server restart: the pool drops it; a new query reconnects.
    this.pool.on('error', (e) => this.log(`database: idle connection lost (${messageOf(e)})`));
  }

  /** One statement on any pooled connection; unreachable database -> DatabaseUnavailable. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    if (this.closed) throw new DomainError('service-closed', 'the database pool is closed');
    try {
      return await this.pool.query<R>(sql, params);
    } catch (e) {
      throw translateError(e);
    }
  }

  /**
   * Runs fn in one transaction (BEGIN ... COMMIT; ROLLBACK on any error). A connection lost mid-way
   * rolls back on the server: nothing is half-written.
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new DomainError('service-closed', 'the database pool is closed');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw translateError(e);
    }
    let broken = false;
    // A checked-out client whose server goes away between two statements emits 'error': without a
    // listener that would end the process. The next statement then fails and the work rolls back.
    const onError = (e: unknown) => {
      broken = true;
      this.log(`database: connection lost in a transaction (${messageOf(e)})`);
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      broken = isUnavailableError(e);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw translateError(e);
    } finally {
      client.off('error', onError);
      // A connection that failed is not given back for reuse.
      client.release(broken ? true : undefined);
    }
  }

  /**
   * A dedicated connection for session-level work (advisory locks held across statements). A lost
   * connection is logged (never an unhandled 'error'); the caller's next statement fails.
   */
  async connect(): Promise<pg.PoolClient> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw translateError(e);
    }
    const onError = (e: unknown) => this.log(`database: dedicated connection lost (${messageOf(e)})`);
    client.on('error', onError);
    const release = client.release.bind(client);
    client.release = (err?: Error | boolean) => {
      client.off('error', onError);
      release(err);
    };
    return client;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
