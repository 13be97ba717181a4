/**
 * The JSON stores' key-value backend on the shared database (serve --database): VM profiles live in table
 * kv_store, one row per (store, key) with a version. Reads are synchronous from a snapshot loaded at
 * start and refreshed by NOTIFY when another replica commits (and fully after a reconnect). A write
 * updates the snapshot at once and is committed in the background with an optimistic check (the row's
 * version must be the one this replica last saw): flushed() resolves once it is committed, or rejects
 * (database-unavailable, store-conflict) with the snapshot restored. Every owner write awaits flushed()
 * before it answers, so a change is acknowledged only once every replica can read it.
 */
import { DomainError } from '../../../app/errors';
import type { KeyValueBackend } from '../../services/kv-backend';
import type { Database } from './database';
import type { Notifier } from './notifier';

export const KV_CHANNEL = 'sev_attest_kv';

interface Entry {
  value: unknown;
  version: number;
}

/** A KeyValueBackend whose writes are confirmed by flushed(). */
export interface FlushableBackend<T extends Record<string, unknown>> extends KeyValueBackend<T> {
  flushed(): Promise<void>;
}

export class PgKeyValueBackend<T extends Record<string, unknown>> implements FlushableBackend<T> {
  readonly path: string;
  private readonly snapshot = new Map<string, Entry>();
  private queue: Promise<unknown> = Promise.resolve();
  private last: Promise<void> = Promise.resolve();
  private pendingWrites = 0;

  private constructor(
    private readonly db: Database,
    private readonly store: string,
    private readonly defaults: T,
  ) {
    this.path = `PostgreSQL table kv_store (store '${store}')`;
  }

  /** Loads the store's rows and follows other replicas' commits through the notifier. */
  static async open<T extends Record<string, unknown>>(
    db: Database,
    notifier: Notifier,
    store: string,
    defaults: T,
  ): Promise<PgKeyValueBackend<T>> {
    const b = new PgKeyValueBackend(db, store, defaults);
    // Listening before the first read: a commit in between is not missed.
    notifier.on(KV_CHANNEL, (payload) => {
      const [s, key] = payload.split('\n');
      if (s === store && key !== undefined) void b.reload(key).catch(() => {});
    });
    notifier.onReconnect(() => void b.reload().catch(() => {}));
    await notifier.listening(KV_CHANNEL);
    await b.reload();
    return b;
  }

  get<K extends keyof T>(key: K): T[K] {
    const e = this.snapshot.get(String(key));
    return structuredClone((e ? e.value : this.defaults[key]) as T[K]);
  }

  set<K extends keyof T>(key: K, value: T[K]): void {
    const k = String(key);
    const previous = this.snapshot.get(k);
    const base = previous?.version ?? 0;
    const copy = structuredClone(value);
    this.snapshot.set(k, { value: copy, version: base + 1 });
    this.pendingWrites++;
    const write = this.queue.then(() => this.write(k, copy, base));
    const done = write.then(
      () => {
        this.pendingWrites--;
      },
      (e: unknown) => {
        this.pendingWrites--;
        // Not committed: the snapshot goes back to what the database holds (as far as this replica knows).
        const now = this.snapshot.get(k);
        if (now?.value === copy) {
          if (previous) this.snapshot.set(k, previous);
          else this.snapshot.delete(k);
        }
        // Another replica's commit may have been skipped while this write was in flight: read it now.
        void this.reload(k).catch(() => {});
        throw e;
      },
    );
    this.queue = done.catch(() => {});
    this.last = done;
  }

  /** Resolves once every write made so far is committed; rejects with the last write's failure. */
  flushed(): Promise<void> {
    return this.last;
  }

  private async write(key: string, value: unknown, base: number): Promise<void> {
    const json = JSON.stringify(value);
    await this.db.transaction(async (c) => {
      const r = await c.query(
        `INSERT INTO kv_store (store, key, value, version) VALUES ($1, $2, $3::jsonb, $4 + 1)
         ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value, version = kv_store.version + 1
           WHERE kv_store.version = $4
         RETURNING version`,
        [this.store, key, json, base],
      );
      if (r.rowCount !== 1) {
        throw new DomainError(
          'store-conflict',
          `the ${this.store} were changed on another replica meanwhile; nothing was saved: reload and try again`,
        );
      }
      await c.query('SELECT pg_notify($1, $2)', [KV_CHANNEL, `${this.store}\n${key}`]);
    });
  }

  /** Re-reads one key (or all) unless this replica has writes in flight (they decide the next version). */
  private async reload(key?: string): Promise<void> {
    const r = await this.db.query<{ key: string; value: unknown; version: string }>(
      key === undefined
        ? 'SELECT key, value, version FROM kv_store WHERE store = $1'
        : 'SELECT key, value, version FROM kv_store WHERE store = $1 AND key = $2',
      key === undefined ? [this.store] : [this.store, key],
    );
    if (this.pendingWrites > 0) return;
    if (key === undefined) this.snapshot.clear();
    for (const row of r.rows) this.snapshot.set(row.key, { value: row.value, version: Number(row.version) });
  }
}
