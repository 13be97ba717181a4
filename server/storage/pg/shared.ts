/**
 * What `serve --database URL` opens before the services are built: the pool, the schema brought to this
 * version (or a refusal when the database is newer), the service keys and the row cipher, the audit
 * chain. server/compose.ts then puts launch connections, secret values and a copy of every audit event in
 * the database (see docs/scale-out.md for what is shared and what is not yet).
 */
import type { AuditEvent } from '../../../app/audit';
import { messageOf } from '../../../app/errors';
import type { AuditLog } from '../../services/audit-log';
import type { PinnedCek } from '../../services/pinned-ceks';
import type { StoredTrustedKey } from '../../services/trusted-keys';
import { PgAuditChain } from './audit-chain';
import { Database, translateError } from './database';
import type { VmProfile } from '../../../app/profile';
import { PgKeyValueBackend } from './kv';
import { migrate, type MigrationReport } from './migrations';
import { Notifier } from './notifier';
import { RowCipher } from './row-cipher';
import { loadServiceKeys } from './service-key';

export interface SharedDatabaseOptions {
  url: string;
  /** The service key file (mode 0600); else SEV_ATTEST_SERVICE_KEY in env. */
  serviceKeyFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Pool size of this replica (default 10). */
  poolSize?: number;
  log?: (line: string) => void;
}

export interface SharedDatabase {
  db: Database;
  cipher: RowCipher;
  chain: PgAuditChain;
  migration: MigrationReport;
  /** LISTEN connection: other replicas' commits (profiles). */
  notifier: Notifier;
  /** VM profiles, shared by every replica. */
  profiles: PgKeyValueBackend<{ profiles: Record<string, VmProfile> }>;
  /** Keys trusted to sign bundles, and the owner's pinned CEKs, shared by every replica. */
  trustedKeys: PgKeyValueBackend<{ keys: StoredTrustedKey[] }>;
  pinnedCeks: PgKeyValueBackend<{ ceks: PinnedCek[] }>;
  close(): Promise<void>;
}

/** Opens and migrates the shared database; the service key is read first (no key: nothing is touched). */
export async function openSharedDatabase(opts: SharedDatabaseOptions): Promise<SharedDatabase> {
  const keys = loadServiceKeys({
    ...(opts.serviceKeyFile !== undefined ? { file: opts.serviceKeyFile } : {}),
    env: opts.env ?? process.env,
  });
  const cipher = new RowCipher(keys);
  const db = new Database({
    url: opts.url,
    ...(opts.poolSize !== undefined ? { max: opts.poolSize } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  const notifier = new Notifier(opts.url, opts.log);
  try {
    const migration = await migrate(db);
    await notifier.start();
    const profiles = await PgKeyValueBackend.open(db, notifier, 'profiles', {
      profiles: {} as Record<string, VmProfile>,
    });
    const trustedKeys = await PgKeyValueBackend.open(db, notifier, 'trusted-keys', {
      keys: [] as StoredTrustedKey[],
    });
    const pinnedCeks = await PgKeyValueBackend.open(db, notifier, 'pinned-ceks', { ceks: [] as PinnedCek[] });
    return {
      db,
      cipher,
      chain: new PgAuditChain(db),
      migration,
      notifier,
      profiles,
      trustedKeys,
      pinnedCeks,
      close: async () => {
        await notifier.close();
        await db.close();
      },
    };
  } catch (e) {
    await notifier.close().catch(() => {});
    await db.close().catch(() => {});
    throw e;
  }
}

/**
 * Copies every event of this replica's audit log into the shared chain, in the background; copyOf(e)
 * resolves once e's copy is committed (a secret release waits for it, so a release is on the chain before
 * the secret leaves). An event that cannot be copied (the database is down) stays in the local log only
 * and is reported through log.
 */
export class AuditChainMirror {
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly unsubscribe: () => void;

  constructor(
    local: AuditLog,
    private readonly chain: PgAuditChain,
    private readonly log: (line: string) => void,
  ) {
    this.unsubscribe = local.subscribe((e) => this.copy(e));
  }

  private copy(e: AuditEvent): void {
    const { id, seq, time, ...input } = e;
    void seq;
    void time;
    // The settled outcome (undefined or the error): never an unhandled rejection.
    const settled = this.chain.append(input).then(
      () => undefined,
      (err: unknown) => {
        this.log(`audit: event ${id} not copied to the shared chain (${messageOf(err)})`);
        return translateError(err);
      },
    );
    this.pending.set(id, settled);
    void settled.finally(() => this.pending.delete(id));
  }

  /**
   * Resolves once the event's copy is committed; rejects (database-unavailable) when it could not be.
   * Call it right after append() returned e (the copy is tracked only while in flight).
   */
  copyOf(e: AuditEvent): Promise<void> {
    const p = this.pending.get(e.id);
    if (!p) return Promise.reject(new Error(`audit event ${e.id} is not being copied`));
    return p.then((failure) => {
      if (failure !== undefined) throw failure;
    });
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await Promise.all([...this.pending.values()]);
  }
}
