/**
 * docs/scale-out/haproxy.cfg with Debian's HAProxy in front of three replicas on real PostgreSQL: the
 * configuration is valid, host flows through it succeed, and a stopped replica is routed around.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { startService, type RunningService } from '../../server/serve/serve';
import { HAPROXY_CFG, startHaproxy, type RunningHaproxy } from '../helpers/haproxy';
import {
  FIRMWARE,
  hostFlow,
  OWNER_TOKEN,
  platform,
  registerVm,
  request,
  tmpDir,
} from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
let haproxy: RunningHaproxy;
const replicas: RunningService[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  cluster = await startPgCluster();
  const url = await cluster.createDatabase();
  const keyDir = tmpDir('sev-key-');
  dirs.push(keyDir);
  const keyFile = join(keyDir, 'service.key');
  fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  for (let i = 0; i < 3; i++) {
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
    replicas.push(svc);
    const up = await request(svc.url, 'PUT', '/v1/artifacts', {
      body: Buffer.from(FIRMWARE),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(up.status).toBe(200);
  }
  expect((await registerVm({ svc: replicas[0]! }, { id: 'vm1', passphrase: 'via haproxy' })).status).toBe(
    200,
  );
  haproxy = await startHaproxy(replicas.map((r) => `127.0.0.1:${r.port}`));
}, 120_000);

afterAll(async () => {
  await haproxy?.stop();
  for (const r of replicas) await r.close().catch(() => {});
  cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('HAProxy in front of three replicas (docs/scale-out/haproxy.cfg)', () => {
  it("the documented configuration is valid for Debian's haproxy", () => {
    const r = spawnSync('haproxy', ['-c', '-f', HAPROXY_CFG], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('the KBS port keeps a source on one replica; the host port spreads', async () => {
    /** Which replica answered: its own "listening on" audit event names it. */
    const whoAnswers = async (base: string) => {
      const ev = await request(base, 'GET', '/v1/events?type=listener', { headers: { connection: 'close' } });
      expect(ev.status).toBe(200);
      return (ev.json.events as Array<{ message?: string }>).find((e) =>
        e.message?.startsWith('listening on'),
      )!.message!;
    };
    const viaKbs = new Set<string>();
    const viaHosts = new Set<string>();
    for (let i = 0; i < 6; i++) {
      viaKbs.add(await whoAnswers(haproxy.kbsUrl));
      viaHosts.add(await whoAnswers(haproxy.url));
    }
    expect(viaKbs.size).toBe(1);
    expect(viaHosts.size).toBe(3);
  });

  it('host flows through the balancer release the secret; a stopped replica is routed around', async () => {
    const via = { svc: { url: haproxy.url } } as Parameters<typeof hostFlow>[0];
    // A fresh connection per request: round robin spreads them over the replicas.
    const flow = () => hostFlow(via, { vmId: 'vm1', headers: { connection: 'close' } });
    for (let i = 0; i < 6; i++) {
      const r = await flow();
      expect(r.validate?.status).toBe(200);
      expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('via haproxy');
    }
    // Each replica audits the launches it answered: round robin gave every one a share.
    const served = await Promise.all(
      replicas.map(
        async (rep) => (await request(rep.url, 'GET', '/v1/events?type=launch&result=ok')).json.events.length,
      ),
    );
    expect(
      served.every((n: number) => n > 0),
      `launches per replica: ${served.join(', ')}`,
    ).toBe(true);
    await replicas[1]!.close();
    for (let i = 0; i < 6; i++) {
      const r = await flow();
      expect(r.validate?.status).toBe(200);
    }
  }, 90_000);
});
