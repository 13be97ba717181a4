import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgConnectionStore } from '../../server/storage/pg/connections';
import { Database, DatabaseUnavailable } from '../../server/storage/pg/database';
import { migrate } from '../../server/storage/pg/migrations';
import { RowCipher } from '../../server/storage/pg/row-cipher';
import { parseServiceKey } from '../../server/storage/pg/service-key';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(() => cluster?.stop());

const key = parseServiceKey(randomBytes(32).toString('base64'), 'test');

/** Three replicas' stores on one fresh database. */
async function replicas(opts: { now?: () => number } = {}) {
  const url = await cluster.createDatabase();
  const dbs = [0, 1, 2].map(() => new Database({ url, max: 40 }));
  await migrate(dbs[0]!);
  const stores = dbs.map((db) => new PgConnectionStore({ db, cipher: new RowCipher([key]), ...opts }));
  return {
    url,
    dbs,
    stores,
    close: async () => {
      for (const s of stores) s.close();
      await Promise.all(dbs.map((d) => d.close()));
    },
  };
}

function newConn(vmId = 'vm1') {
  return {
    vmId,
    policy: 0x1,
    client: '10.0.0.1:4000',
    clientKey: '10.0.0.1|no-host-token',
    chipId: undefined,
    anchor: 'amd-ark:milan',
    tek: randomBytes(16),
    tik: randomBytes(16),
  };
}

describe('launch connections in PostgreSQL', () => {
  it('a launch on one replica is taken with its keys on another; the keys are never stored in clear', async () => {
    const r = await replicas();
    try {
      const input = newConn();
      const created = await r.stores[0]!.create(input);
      const raw = await r.dbs[0]!.query<{ sealed_keys: Buffer }>('SELECT sealed_keys FROM connections');
      const sealed = raw.rows[0]!.sealed_keys;
      expect(sealed.includes(Buffer.from(input.tek))).toBe(false);
      expect(sealed.includes(Buffer.from(input.tik))).toBe(false);
      expect(await r.stores[2]!.latestFor('vm1', '10.0.0.1|no-host-token')).toBe(created.id);
      expect(await r.stores[2]!.latestFor('vm1', '10.0.0.2|no-host-token')).toBeUndefined();
      const taken = await r.stores[1]!.take(created.id);
      if (!taken.ok) throw new Error(taken.reason);
      expect(Buffer.from(taken.connection.tek!)).toEqual(input.tek);
      expect(Buffer.from(taken.connection.tik!)).toEqual(input.tik);
      expect(taken.connection).toMatchObject({
        vmId: 'vm1',
        policy: 1,
        anchor: 'amd-ark:milan',
        state: 'in-use',
      });
      // Keys leave the row at the claim, not at the finish.
      const after = await r.dbs[0]!.query('SELECT state, sealed_keys FROM connections');
      expect(after.rows[0]).toMatchObject({ state: 'in-use', sealed_keys: null });
      await r.stores[1]!.finish(taken.connection);
      expect(taken.connection.tek).toBeUndefined();
      expect((await r.dbs[0]!.query('SELECT state FROM connections')).rows[0]?.state).toBe('used');
      expect(await r.stores[0]!.take(created.id)).toEqual({ ok: false, reason: 'connection-used' });
    } finally {
      await r.close();
    }
  });

  it('100 concurrent takes of one connection over 3 replicas: exactly one gets it', async () => {
    const r = await replicas();
    try {
      const c = await r.stores[0]!.create(newConn());
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => r.stores[i % 3]!.take(c.id)));
      const ok = results.filter((x) => x.ok);
      expect(ok).toHaveLength(1);
      expect(results.filter((x) => !x.ok && x.reason === 'connection-used')).toHaveLength(99);
    } finally {
      await r.close();
    }
  });

  it('unknown, malformed and expired ids; expiry clears the keys', async () => {
    let now = Date.now();
    const r = await replicas({ now: () => now });
    try {
      expect(await r.stores[0]!.take(randomUUID())).toEqual({ ok: false, reason: 'unknown-connection' });
      expect(await r.stores[0]!.take("x' OR 1=1 --")).toEqual({ ok: false, reason: 'unknown-connection' });
      const c = await r.stores[0]!.create(newConn());
      const d = await r.stores[0]!.create(newConn('vm2'));
      now += 11 * 60_000;
      expect(await r.stores[1]!.take(c.id)).toEqual({ ok: false, reason: 'connection-expired' });
      await r.stores[2]!.sweep();
      const rows = await r.dbs[0]!.query('SELECT state, sealed_keys FROM connections WHERE id = $1', [d.id]);
      expect(rows.rows[0]).toMatchObject({ state: 'expired', sealed_keys: null });
      expect(await r.stores[1]!.take(d.id)).toEqual({ ok: false, reason: 'connection-expired' });
    } finally {
      await r.close();
    }
  });

  it("a row's sealed keys moved to another row do not open (and that row never releases)", async () => {
    const r = await replicas();
    try {
      const a = await r.stores[0]!.create(newConn('vmA'));
      const b = await r.stores[0]!.create(newConn('vmB'));
      await r.dbs[0]!.query(
        'UPDATE connections SET sealed_keys = (SELECT sealed_keys FROM connections WHERE id = $1) WHERE id = $2',
        [a.id, b.id],
      );
      await expect(r.stores[1]!.take(b.id)).rejects.toMatchObject({
        code: 'row-undecryptable',
        message: expect.stringMatching(/belongs to another row or state/),
      });
      expect(await r.stores[1]!.take(b.id)).toEqual({ ok: false, reason: 'connection-used' });
      // A replica with another service key cannot open any row.
      const stranger = new PgConnectionStore({
        db: r.dbs[2]!,
        cipher: new RowCipher([parseServiceKey(randomBytes(32).toString('hex'), 'other')]),
      });
      await expect(stranger.take(a.id)).rejects.toMatchObject({ code: 'row-undecryptable' });
      stranger.close();
    } finally {
      await r.close();
    }
  });

  it('database down: DatabaseUnavailable, then it works again by itself', async () => {
    const own = await startPgCluster();
    const url = await own.createDatabase();
    const db = new Database({ url, connectTimeoutMs: 1000 });
    const store = new PgConnectionStore({ db, cipher: new RowCipher([key]) });
    try {
      await migrate(db);
      const c = await store.create(newConn());
      own.stopServer();
      await expect(store.take(c.id)).rejects.toBeInstanceOf(DatabaseUnavailable);
      await expect(store.create(newConn())).rejects.toBeInstanceOf(DatabaseUnavailable);
      own.startServer();
      const taken = await store.take(c.id);
      expect(taken.ok).toBe(true);
    } finally {
      store.close();
      await db.close();
      own.stop();
    }
  });
});
