/**
 * serve --database end to end over real HTTP on real PostgreSQL: replicas started in this process on one
 * database and one service key; a simulated host launches on one replica and validates on another (SEV,
 * SEV with measured direct boot, SEV-ES), 100 concurrent validates of one connection over 3 replicas get
 * exactly one 200, and what the database holds is sealed.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import { startService, type RunningService } from '../../server/serve/serve';
import { PgAuditChain } from '../../server/storage/pg/audit-chain';
import { Database } from '../../server/storage/pg/database';
import {
  FIRMWARE,
  hostFlow,
  launchBody,
  OWNER_TOKEN,
  platform,
  registerVm,
  request,
  runGuestLaunch,
  tmpDir,
} from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const KERNEL = { kernelHash: sha('kernel'), initrdHash: sha('initrd'), cmdline: 'console=ttyS0' };

let cluster: PgCluster;
let url: string;
let keyFile: string;
const replicas: RunningService[] = [];
const dirs: string[] = [];

async function startReplica(): Promise<RunningService> {
  const dataDir = tmpDir('sev-replica-');
  dirs.push(dataDir);
  const askArk = join(dataDir, 'sim-ask-ark.cert');
  fs.writeFileSync(askArk, platform().askArk);
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    trustCa: [askArk],
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    database: { url, serviceKeyFile: keyFile },
  });
  // Each replica uploads the same firmware (content-addressed: one shared copy; test/storage/scale-out-artifacts.test.ts uploads once).
  const up = await request(svc.url, 'PUT', '/v1/artifacts', {
    token: OWNER_TOKEN,
    body: Buffer.from(FIRMWARE),
    headers: { 'content-type': 'application/octet-stream' },
  });
  expect(up.status).toBe(200);
  return svc;
}

beforeAll(async () => {
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  const keyDir = tmpDir('sev-key-');
  dirs.push(keyDir);
  keyFile = join(keyDir, 'service.key');
  fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  for (let i = 0; i < 3; i++) replicas.push(await startReplica());
  const [a] = replicas;
  expect((await registerVm({ svc: a! }, { id: 'sev1', passphrase: 'sev one' })).status).toBe(200);
  expect(
    (await registerVm({ svc: a! }, { id: 'mdb', kernel: KERNEL, passphrase: 'direct boot' })).status,
  ).toBe(200);
  const es = await registerVm(
    { svc: a! },
    { id: 'es', sevEs: true, cpuCounts: [1, 2], passphrase: 'es secret' },
  );
  expect(es.status).toBe(200);
}, 120_000);

afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => {});
  cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('serve --database: launch on one replica, validate on another', () => {
  it('a VM registered on one replica is listed by the others', async () => {
    for (const r of replicas.slice(1)) {
      const list = await request(r.url, 'GET', '/v1/vm', { token: OWNER_TOKEN });
      expect(list.status).toBe(200);
      expect(JSON.stringify(list.json)).toContain('"sev1"');
    }
  });

  it('SEV', async () => {
    const r = await hostFlow({ svc: replicas[0]! }, { vmId: 'sev1', validateBase: replicas[1]!.url });
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('sev one');
  });

  it('SEV with measured direct boot', async () => {
    const r = await hostFlow(
      { svc: replicas[1]! },
      { vmId: 'mdb', kernel: KERNEL, validateBase: replicas[2]!.url },
    );
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('direct boot');
  });

  it('SEV-ES', async () => {
    const r = await hostFlow(
      { svc: replicas[2]! },
      { vmId: 'es', sevEs: true, cpus: 2, validateBase: replicas[0]!.url },
    );
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('es secret');
  });

  it("validate by VM id on another replica finds the launching client's connection", async () => {
    const r = await hostFlow(
      { svc: replicas[0]! },
      { vmId: 'sev1', validateByVm: true, validateBase: replicas[2]!.url },
    );
    expect(r.validate?.status).toBe(200);
  });

  it('100 concurrent validates of one connection over 3 replicas: exactly one 200, the others 409', async () => {
    const p = platform();
    const launch = await request(replicas[0]!.url, 'POST', '/v1/vm/sev1/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
    });
    expect(launch.status).toBe(200);
    const guest = p.launchStart({
      policy: launch.json.policy,
      ownerCert: fromBase64(launch.json['owner-cert']),
      session: fromBase64(launch.json.session),
    });
    await runGuestLaunch(guest, { sevEs: false });
    const body = {
      'api-major': p.apiMajor,
      'api-minor': p.apiMinor,
      'build-id': p.build,
      policy: 1,
      measurement: toBase64(guest.launchMeasure()),
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        request(replicas[i % 3]!.url, 'POST', `/v1/connections/${launch.json.connection}/validate`, {
          token: null,
          body,
        }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(99);
    const ok = results.find((r) => r.status === 200)!;
    const out = guest.launchSecret({
      header: fromBase64(ok.json['secret-header']),
      payload: fromBase64(ok.json['secret-table']),
    });
    expect(Buffer.from(out.entries[0]!.data).toString()).toBe('sev one');
  }, 60_000);

  it('an approval requested on one replica is on every replica within a second; decided on another, it admits one launch', async () => {
    expect(
      (await registerVm({ svc: replicas[0]! }, { id: 'manual', approval: 'manual', passphrase: 'approved' }))
        .status,
    ).toBe(200);
    const body = launchBody({ policy: 1 });
    const first = await request(replicas[1]!.url, 'POST', '/v1/vm/manual/launch', { body, token: null });
    expect(first.status).toBe(202);
    const id = first.json.approval as string;
    const seen = Date.now();
    for (const r of [replicas[0]!, replicas[2]!]) {
      for (;;) {
        const list = await request(r.url, 'GET', '/v1/approvals');
        if (
          list.json.approvals.some((a: { id: string; state: string }) => a.id === id && a.state === 'pending')
        )
          break;
        expect(Date.now() - seen).toBeLessThan(1000);
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    // The host repeats on another replica: still pending, the same approval.
    const again = await request(replicas[2]!.url, 'POST', '/v1/vm/manual/launch', { body, token: null });
    expect(again.status).toBe(202);
    expect(again.json.approval).toBe(id);
    // The owner approves on a third replica.
    const decided = await request(replicas[0]!.url, 'POST', `/v1/approvals/${id}`, {
      body: { decision: 'approve' },
    });
    expect(decided.status).toBe(200);
    await new Promise((res) => setTimeout(res, 200));
    // Repeated on every replica at once: exactly one launch is admitted by the approval.
    const repeats = await Promise.all(
      replicas.map((r) => request(r.url, 'POST', '/v1/vm/manual/launch', { body, token: null })),
    );
    expect(repeats.filter((r) => r.status === 200)).toHaveLength(1);
    const admitted = repeats.find((r) => r.status === 200)!;
    const p = platform();
    const guest = p.launchStart({
      policy: admitted.json.policy,
      ownerCert: fromBase64(admitted.json['owner-cert']),
      session: fromBase64(admitted.json.session),
    });
    await runGuestLaunch(guest, { sevEs: false });
    const v = await request(
      replicas[2]!.url,
      'POST',
      `/v1/connections/${admitted.json.connection}/validate`,
      {
        token: null,
        body: {
          'api-major': p.apiMajor,
          'api-minor': p.apiMinor,
          'build-id': p.build,
          policy: 1,
          measurement: toBase64(guest.launchMeasure()),
        },
      },
    );
    expect(v.status).toBe(200);
    const out = guest.launchSecret({
      header: fromBase64(v.json['secret-header']),
      payload: fromBase64(v.json['secret-table']),
    });
    expect(Buffer.from(out.entries[0]!.data).toString()).toBe('approved');
  }, 60_000);

  it("a CEK pinned on one replica is the others' pin too", async () => {
    const p = platform();
    const chip = Buffer.from(p.chipId).toString('hex');
    const pin = await request(replicas[2]!.url, 'PUT', `/v1/chips/${chip}/cek`, {
      body: { cek: toBase64(p.signedCek), label: 'pinned on replica 3' },
    });
    expect(pin.status).toBe(200);
    const end = Date.now() + 1000;
    for (;;) {
      const list = await request(replicas[0]!.url, 'GET', '/v1/chips');
      if (JSON.stringify(list.json).includes('pinned on replica 3')) break;
      expect(Date.now()).toBeLessThan(end);
      await new Promise((res) => setTimeout(res, 20));
    }
  });

  it('the database holds no secret or session key in clear, and the audit chain verifies with the releases', async () => {
    const db = new Database({ url });
    try {
      const secrets = await db.query<{ sealed: Buffer }>('SELECT sealed FROM secrets');
      expect(secrets.rows.length).toBeGreaterThanOrEqual(3);
      for (const row of secrets.rows) {
        for (const clear of ['sev one', 'direct boot', 'es secret'])
          expect(row.sealed.includes(clear)).toBe(false);
      }
      const open = await db.query(
        "SELECT count(*)::int AS n FROM connections WHERE state <> 'open' AND sealed_keys IS NOT NULL",
      );
      expect(open.rows[0]?.n).toBe(0);
      const chain = new PgAuditChain(db);
      // Copies are written in the background: the releases are there (each awaited before its reply).
      const events = await chain.listAfter(0, 10_000);
      expect(
        events.filter((e) => e.type === 'secret-release' && e.result === 'ok').length,
      ).toBeGreaterThanOrEqual(5);
      expect(JSON.stringify(events)).not.toContain('sev one');
      expect(await chain.verify()).toMatchObject({ ok: true });
    } finally {
      await db.close();
    }
  });
});
