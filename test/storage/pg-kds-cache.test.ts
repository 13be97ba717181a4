/**
 * The key-server cache in the shared database: a VCEK, chain and CRL fetched by one replica's SNP key
 * client are found by another's without asking the key server (a stand-in counting its requests), a
 * damaged cached VCEK is fetched again, and SEV CEKs round-trip.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import type { SnpKdsStandIn } from '../../app/sim/snp-kds-stand-in';
import { SnpKdsClient } from '../../app/snp/kds';
import { Database } from '../../server/storage/pg/database';
import { PgCekCache, PgSnpKdsCache } from '../../server/storage/pg/kds-cache';
import { migrate } from '../../server/storage/pg/migrations';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
let dbA: Database;
let dbB: Database;
let fw: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };

beforeAll(async () => {
  cluster = await startPgCluster();
  const url = await cluster.createDatabase();
  dbA = new Database({ url });
  dbB = new Database({ url });
  await migrate(dbA);
  fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  kds = await fw.kdsStandIn();
}, 60_000);

afterAll(async () => {
  await kds?.stop();
  await dbA?.close();
  await dbB?.close();
  await cluster?.stop();
});

describe('key-server cache in PostgreSQL', () => {
  it("one replica's fetch serves the other: VCEK, chain and CRL without a second request", async () => {
    const a = new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, cache: new PgSnpKdsCache(dbA) });
    const b = new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, cache: new PgSnpKdsCache(dbB) });
    expect((await a.getVcek('Milan', fw.chipId, fw.tcb)).source).toBe('kds');
    expect((await a.getCrl('Milan')).source).toBe('kds');
    await a.getChain('Milan', 'vcek');
    const asked = kds.requests.length;
    const v = await b.getVcek('Milan', fw.chipId, fw.tcb);
    expect(v.source).toBe('cache');
    expect((await b.getCrl('Milan')).source).toBe('cache');
    const chain = await b.getChain('Milan', 'vcek');
    expect(chain.ark.length).toBeGreaterThan(0);
    expect(kds.requests.length).toBe(asked);
  });

  it('a damaged cached VCEK is not used: fetched again and the row repaired', async () => {
    await dbA.query(`UPDATE kds_cache SET body = '\\x3082'::bytea WHERE kind = 'snp' AND name LIKE 'vcek/%'`);
    const b = new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, cache: new PgSnpKdsCache(dbB) });
    expect((await b.getVcek('Milan', fw.chipId, fw.tcb)).source).toBe('kds');
    expect((await b.getVcek('Milan', fw.chipId, fw.tcb)).source).toBe('cache');
  });

  it('SEV CEKs by chip id', async () => {
    const id = 'ab'.repeat(64);
    await new PgCekCache(dbA).put(id, Uint8Array.from([1, 2, 3]));
    expect(Array.from((await new PgCekCache(dbB).get(id.toUpperCase()))!)).toEqual([1, 2, 3]);
    expect(await new PgCekCache(dbB).get('cd'.repeat(64))).toBeUndefined();
  });
});
