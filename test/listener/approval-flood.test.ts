/**
 * Issue 10 point 4, through real HTTP: replaying one public platform chain from 550 loopback addresses
 * must not fill the approval queue and lock out a real host (budgets per client group and per platform),
 * and a host with the host token keeps its own budget when anonymous hosts filled theirs.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toBase64 } from '../../app/sev/bytes';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import {
  platform,
  registerVm,
  request,
  startHarness,
  tmpDir,
  type Harness,
} from '../helpers/listener-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const honest = SimulatedSevPlatform.create({ generation: 'naples', seed: 'approval-flood-honest' });
const other = SimulatedSevPlatform.create({ generation: 'naples', seed: 'approval-flood-other' });
const bodyOf = (p: SimulatedSevPlatform) => ({
  pdh: toBase64(p.pdh),
  'cert-chain': toBase64(p.certChain),
  cek: toBase64(p.signedCek),
  policy: 1,
});

function launchFrom(
  base: string,
  localAddress: string,
  vm: string,
  body: unknown,
  token?: string,
): Promise<number> {
  const url = new URL(`/v1/vm/${vm}/launch`, base);
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        localAddress,
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': String(payload.length),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Trust the harness platform (the "public chain" replayed) and two more simulated platforms. */
function trustAll(): { dataDir: string; trustCa: string[] } {
  const dataDir = tmpDir();
  const files = [platform(), honest, other].map((p, i) => {
    const f = join(dataDir, `ask-ark-${i}.cert`);
    fs.writeFileSync(f, p.askArk);
    return f;
  });
  return { dataDir, trustCa: files };
}

/** 550 addresses in 11 /24s, each launching two manual VMs with the same public chain. */
async function flood(base: string): Promise<number[]> {
  const codes: number[] = [];
  const addrs = Array.from({ length: 550 }, (_, i) => `127.9.${1 + (i % 11)}.${1 + Math.floor(i / 11)}`);
  for (let i = 0; i < addrs.length; i += 50) {
    const part = await Promise.all(
      addrs
        .slice(i, i + 50)
        .flatMap((a) => ['m1', 'm2'].map((vm) => launchFrom(base, a, vm, bodyOf(platform())))),
    );
    codes.push(...part);
  }
  return codes;
}

describe('approval queue under a flood', () => {
  it('1,100 replayed launches from 550 addresses leave a real host able to queue its approval', async () => {
    h = await startHarness(trustAll());
    for (const id of ['m1', 'm2', 'real'])
      expect((await registerVm(h, { id, approval: 'manual' })).status).toBe(200);
    const codes = await flood(h.svc.url);
    expect(codes.filter((c) => c === 202).length).toBeLessThanOrEqual(4);
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(1000);
    const health = await request(h.svc.url, 'GET', '/v1/health');
    expect(health.json['pending-approvals']).toBeLessThanOrEqual(4);
    // A real host (another platform) still gets its approval queued.
    expect(await launchFrom(h.svc.url, '127.0.0.1', 'real', bodyOf(honest))).toBe(202);
    // And once the owner sets a host token, a host with it gets through too.
    await h.svc.configureListener({ host: '127.0.0.1', port: 0, tls: false, hostToken: 'generate' });
    expect(await launchFrom(h.svc.url, '127.0.0.1', 'real', bodyOf(other), h.svc.hostToken)).toBe(202);
    expect(await launchFrom(h.svc.url, '127.0.0.2', 'real', bodyOf(other))).toBe(401);
  }, 120_000);

  it('per client group: one /24 queues at most its budget, others still can', async () => {
    h = await startHarness({
      ...trustAll(),
      approvalLimits: { maxPendingPerClient: 2, maxPendingPerPlatform: 100 },
    });
    expect((await registerVm(h, { id: 'm1', approval: 'manual' })).status).toBe(200);
    const same = [];
    for (let i = 1; i <= 5; i++)
      same.push(await launchFrom(h.svc.url, `127.10.0.${i}`, 'm1', bodyOf(platform())));
    expect(same).toEqual([202, 202, 429, 429, 429]);
    expect(await launchFrom(h.svc.url, '127.10.1.1', 'm1', bodyOf(platform()))).toBe(202);
  });

  it('when anonymous hosts filled their budget, a host with the host token has its own', async () => {
    h = await startHarness({
      ...trustAll(),
      approvalLimits: { maxPending: 2, maxPendingPerClient: 10, maxPendingPerPlatform: 10 },
    });
    expect((await registerVm(h, { id: 'm1', approval: 'manual' })).status).toBe(200);
    expect(await launchFrom(h.svc.url, '127.11.0.1', 'm1', bodyOf(platform()))).toBe(202);
    expect(await launchFrom(h.svc.url, '127.11.0.2', 'm1', bodyOf(platform()))).toBe(202);
    expect(await launchFrom(h.svc.url, '127.11.0.3', 'm1', bodyOf(honest))).toBe(429);
    await h.svc.configureListener({ host: '127.0.0.1', port: 0, tls: false, hostToken: 'generate' });
    expect(await launchFrom(h.svc.url, '127.11.0.3', 'm1', bodyOf(honest), h.svc.hostToken)).toBe(202);
  });

  it('the listener status recommends a host token while a VM asks for manual approval', async () => {
    h = await startHarness();
    expect(h.svc.listenerStatus().hostTokenRecommended).toBeUndefined();
    expect((await registerVm(h, { id: 'm1', approval: 'manual' })).status).toBe(200);
    expect(h.svc.listenerStatus().hostTokenRecommended).toBe(true);
    await h.svc.configureListener({ host: '127.0.0.1', port: 0, tls: false, hostToken: 'generate' });
    expect(h.svc.listenerStatus().hostTokenRecommended).toBeUndefined();
  });

  it('requireHostToken: the service refuses to start without a host token', async () => {
    await expect(startHarness({ requireHostToken: true })).rejects.toThrow(/host token is required/);
    h = await startHarness({ requireHostToken: true, hostToken: 'a-host-token-of-32-characters-xx' });
    expect(h.svc.hostToken).toBeDefined();
  });
});
