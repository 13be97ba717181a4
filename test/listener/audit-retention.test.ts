/**
 * Issue 10 point 2, through real HTTP: a flood of refused launches from 16 loopback addresses can
 * neither evict a secret release (nor decisions, profile changes) from the audit log nor write one event
 * per request; the retained stream has a disk budget and, once it is reached, releases are refused
 * (503 audit-full) rather than retained events dropped.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  hostFlow,
  launchBody,
  registerVm,
  request,
  startHarness,
  type Harness,
} from '../helpers/listener-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type Ev = {
  seq: number;
  type: string;
  result: string;
  reason?: string;
  connection?: string;
  details?: { aggregated?: number };
};

function lines(file: string): Ev[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Ev);
}

function retainedEvents(dataDir: string): Ev[] {
  const dir = join(dataDir, 'audit-retained');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .flatMap((f) => lines(join(dir, f)))
    .sort((a, b) => a.seq - b.seq);
}

/** A refused launch from a chosen loopback source address. */
function launchFrom(base: string, localAddress: string, path: string, body: unknown): Promise<number> {
  const url = new URL(path, base);
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
        headers: { 'content-type': 'application/json', 'content-length': String(payload.length) },
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

describe('audit retention under a flood', () => {
  it('480 refused launches from 16 addresses: aggregated per client and reason, the release is kept', async () => {
    h = await startHarness({ audit: { maxEntries: 40, aggregateWindowMs: 60_000 } });
    expect((await registerVm(h, { id: 'vm1' })).status).toBe(200);
    const flow = await hostFlow(h, { vmId: 'vm1' });
    expect(flow.validate?.status).toBe(200);
    const conn = flow.launch.json.connection as string;

    const kinds: Array<[string, unknown]> = [
      ['/v1/vm/nope/launch', launchBody({ policy: 1 })],
      ['/v1/launch', launchBody({ policy: 7 })],
      ['/v1/vm/vm1/launch', launchBody({ policy: 5 })],
    ];
    let sent = 0;
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 16 }, async (_, i) => {
          for (const [path, body] of kinds) {
            expect(await launchFrom(h!.svc.url, `127.5.0.${i + 1}`, path, body)).toBeGreaterThanOrEqual(400);
            sent++;
          }
        }),
      );
    }
    expect(sent).toBe(480);
    // The owner still sees the release although the window (40 events) saw far more.
    const seen = await request(h.svc.url, 'GET', '/v1/events?type=secret-release');
    expect(seen.json.events.map((e: Ev) => e.connection)).toEqual([conn]);
    const profile = await request(h.svc.url, 'GET', '/v1/events?type=profile');
    expect(profile.json.events.length).toBeGreaterThan(0);

    const dataDir = h.dataDir;
    await h.close();
    h = undefined;
    // One event per client and reason, plus one "×N" summary each: never one per request.
    const refused = lines(join(dataDir, 'audit.log')).filter(
      (e) => e.type === 'launch' && e.result === 'refused',
    );
    const all = [
      ...new Map(
        [...retainedEvents(dataDir), ...lines(join(dataDir, 'audit.log'))].map((e) => [e.seq, e]),
      ).values(),
    ];
    const launchRefused = all.filter((e) => e.type === 'launch' && e.result === 'refused');
    expect(launchRefused.length).toBeLessThanOrEqual(16 * 3 * 2);
    expect(refused.length).toBeLessThanOrEqual(40);
    // The retained stream has the release, in order, after the flood.
    expect(
      retainedEvents(dataDir)
        .filter((e) => e.type === 'secret-release')
        .map((e) => e.connection),
    ).toEqual([conn]);

    // And after a restart the owner still sees it.
    h = await startHarness({ dataDir, audit: { maxEntries: 40 } });
    const again = await request(h.svc.url, 'GET', '/v1/events?type=secret-release');
    expect(again.json.events.map((e: Ev) => e.connection)).toEqual([conn]);
  });

  it('the summaries count every refused request', async () => {
    h = await startHarness({ audit: { aggregateWindowMs: 1500 } });
    for (let i = 0; i < 40; i++)
      await launchFrom(h.svc.url, `127.6.0.${(i % 4) + 1}`, '/v1/vm/nope/launch', launchBody());
    await new Promise((r) => setTimeout(r, 2500));
    const events = (await request(h.svc.url, 'GET', '/v1/events?type=launch')).json.events as Ev[];
    const firsts = events.filter((e) => e.details?.aggregated === undefined).length;
    const more = events.reduce((n, e) => n + (e.details?.aggregated ?? 0), 0);
    // One window per client and reason (a second one only if the 40 requests took over 1.5 s).
    expect(firsts).toBeGreaterThanOrEqual(4);
    expect(firsts).toBeLessThanOrEqual(8);
    expect(firsts + more).toBe(40);
  });

  it('validates refused on their evidence are never aggregated: each mismatch keeps its evidence', async () => {
    h = await startHarness({ audit: { aggregateWindowMs: 60_000 } });
    expect((await registerVm(h, { id: 'vm1' })).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const r = await hostFlow(h, { vmId: 'vm1', tamperMeasurement: (m) => (m[0]! ^= 1) });
      expect(r.validate?.status).toBe(403);
    }
    const events = (await request(h.svc.url, 'GET', '/v1/events?type=validate&result=refused')).json
      .events as Array<Ev & { details: { mismatch?: unknown } }>;
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.reason === 'measurement-mismatch' && e.details.mismatch !== undefined)).toBe(
      true,
    );
  });

  it('at the retained budget: releases are refused (503 audit-full), nothing retained is dropped, health says so', async () => {
    const log: string[] = [];
    h = await startHarness({
      audit: { retainedBudgetBytes: 6000, segmentBytes: 2048 },
      log: (l) => log.push(l),
    });
    expect((await registerVm(h, { id: 'vm1' })).status).toBe(200);
    const released: string[] = [];
    let refused: Awaited<ReturnType<typeof hostFlow>> | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await hostFlow(h, { vmId: 'vm1' });
      if (r.validate?.status === 200) released.push(r.launch.json.connection);
      else refused = r;
    }
    expect(refused?.validate?.status).toBe(503);
    expect(refused?.validate?.json).toMatchObject({ error: 'audit-full' });
    expect(refused?.secret).toBeUndefined();
    expect(released.length).toBeGreaterThan(2);
    const health = await request(h.svc.url, 'GET', '/v1/health');
    expect(health.json.audit).toMatchObject({ full: true, 'retained-budget-bytes': 6000 });
    expect(log.filter((l) => l.includes('reached its budget'))).toHaveLength(1);
    // Every release is in the retained stream (segments included): none was dropped to make room.
    const dir = join(h.dataDir, 'audit-retained');
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('segment-')).length).toBeGreaterThan(0);
    expect(
      retainedEvents(h.dataDir)
        .filter((e) => e.type === 'secret-release')
        .map((e) => e.connection),
    ).toEqual(released);
    // The owner moves the archived segments away: releases work again.
    const archive = join(h.dataDir, 'archive');
    fs.mkdirSync(archive);
    for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('segment-')))
      fs.renameSync(join(dir, f), join(archive, f));
    expect((await hostFlow(h, { vmId: 'vm1' })).validate?.status).toBe(200);
  });
});
