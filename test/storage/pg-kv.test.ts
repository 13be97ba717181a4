/**
 * The shared JSON store of serve --database (VM profiles) on real PostgreSQL: a commit on one replica
 * reaches another through NOTIFY; concurrent writers on two replicas: the second gets store-conflict and
 * its snapshot goes back; a write while the database is down is refused and not kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../server/storage/pg/database';
import { PgKeyValueBackend } from '../../server/storage/pg/kv';
import { migrate } from '../../server/storage/pg/migrations';
import { Notifier } from '../../server/storage/pg/notifier';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => cluster?.stop());

type Shape = { profiles: Record<string, { name: string }> };

async function replica(url: string) {
  const db = new Database({ url, connectTimeoutMs: 1000 });
  const notifier = new Notifier(url);
  await notifier.start();
  const kv = await PgKeyValueBackend.open<Shape>(db, notifier, 'profiles', { profiles: {} });
  return {
    kv,
    close: async () => {
      await notifier.close();
      await db.close();
    },
  };
}

async function until(check: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('not within the time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('PgKeyValueBackend', () => {
  it('a commit on one replica reaches the other; concurrent writers: one store-conflict, nothing of it kept', async () => {
    const url = await cluster.createDatabase();
    const boot = new Database({ url });
    await migrate(boot);
    await boot.close();
    const a = await replica(url);
    const b = await replica(url);
    try {
      a.kv.set('profiles', { vm1: { name: 'one' } });
      await a.kv.flushed();
      await until(() => b.kv.get('profiles').vm1?.name === 'one');
      // Both change it from the same version at once.
      a.kv.set('profiles', { vm1: { name: 'from a' } });
      b.kv.set('profiles', { vm1: { name: 'from b' } });
      const results = await Promise.allSettled([a.kv.flushed(), b.kv.flushed()]);
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed).toHaveLength(1);
      expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({
        code: 'store-conflict',
        message: expect.stringMatching(/changed on another replica meanwhile; nothing was saved/),
      });
      // Both end on the committed value.
      const winner = results[0]!.status === 'fulfilled' ? 'from a' : 'from b';
      await until(
        () => a.kv.get('profiles').vm1?.name === winner && b.kv.get('profiles').vm1?.name === winner,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a write while the database is down is refused (503) and not kept; afterwards writes work again', async () => {
    const own = await startPgCluster();
    const url = await own.createDatabase();
    const boot = new Database({ url });
    await migrate(boot);
    await boot.close();
    const a = await replica(url);
    try {
      a.kv.set('profiles', { vm1: { name: 'kept' } });
      await a.kv.flushed();
      own.stopServer();
      a.kv.set('profiles', { vm1: { name: 'lost' } });
      await expect(a.kv.flushed()).rejects.toMatchObject({ code: 'database-unavailable' });
      expect(a.kv.get('profiles').vm1?.name).toBe('kept');
      own.startServer();
      a.kv.set('profiles', { vm1: { name: 'later' } });
      await a.kv.flushed();
      expect(a.kv.get('profiles').vm1?.name).toBe('later');
    } finally {
      await a.close();
      own.stop();
    }
  });
});
