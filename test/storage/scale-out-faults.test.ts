/**
 * serve --database under faults, with replicas as real `sev-attest serve` processes (the built CLI) on
 * one throwaway PostgreSQL: a replica SIGKILLed between launch and validate (another replica validates),
 * PostgreSQL stopped (503 + Retry-After, nothing half-written) and restarted mid-traffic (replicas come
 * back by themselves).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { buildCliPackage, startServe, type StartedServe } from '../helpers/built-cli';
import { FIRMWARE, hostFlow, platform, registerVm, request, tmpDir } from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
let url: string;
let keyFile: string;
let entry: string;
const started: StartedServe[] = [];
const dirs: string[] = [];

async function startReplica(): Promise<StartedServe> {
  const dataDir = tmpDir('sev-replica-');
  dirs.push(dataDir);
  const askArk = join(dataDir, 'sim-ask-ark.cert');
  fs.writeFileSync(askArk, platform().askArk);
  const s = await startServe(process.execPath, [
    entry,
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    '--trust-ca',
    askArk,
    '--database',
    url,
    '--service-key-file',
    keyFile,
  ]);
  started.push(s);
  const up = await request(s.url, 'PUT', '/v1/artifacts', {
    token: s.token,
    body: Buffer.from(FIRMWARE),
    headers: { 'content-type': 'application/octet-stream' },
  });
  expect(up.status).toBe(200);
  return s;
}

const svcOf = (s: StartedServe) => ({ svc: { url: s.url } }) as Parameters<typeof hostFlow>[0];

beforeAll(async () => {
  const pkg = buildCliPackage('sev-scale-cli-');
  dirs.push(pkg.pkgDir);
  entry = pkg.entry;
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  const keyDir = tmpDir('sev-key-');
  dirs.push(keyDir);
  keyFile = join(keyDir, 'service.key');
  fs.writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  for (const s of started) {
    s.child.kill('SIGKILL');
    await s.exited;
  }
  cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('serve --database under faults', () => {
  it('a replica SIGKILLed between launch and validate: another replica validates the launch', async () => {
    const a = await startReplica();
    const b = await startReplica();
    expect(
      (await registerVm({ svc: { url: a.url } } as never, { id: 'vm1', passphrase: 'pass one' }, a.token))
        .status,
    ).toBe(200);
    const r = await hostFlow(svcOf(a), {
      vmId: 'vm1',
      validateBase: b.url,
      beforeValidate: async () => {
        a.child.kill('SIGKILL');
        expect((await a.exited).signal).toBe('SIGKILL');
      },
    });
    expect(r.launch.status).toBe(200);
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('pass one');
    // The killed replica's start-up left the schema; a new replica starts on it and serves at once.
    const c = await startReplica();
    const again = await hostFlow(svcOf(c), { vmId: 'vm1', validateBase: b.url });
    expect(again.validate?.status).toBe(200);
  }, 90_000);

  it('PostgreSQL down: 503 + Retry-After, nothing half-written; back up: the same replicas serve again', async () => {
    const [b, c] = started.slice(-2) as [StartedServe, StartedServe];
    // A launch answered before the outage is validated after it: the connection is in the database.
    const launchedBefore = await hostFlow(svcOf(b), {
      vmId: 'vm1',
      validateBase: c.url,
      beforeValidate: async () => {
        cluster.stopServer();
        const down = await request(c.url, 'POST', '/v1/vm/vm1/launch', {
          token: null,
          body: { pdh: 'x' },
        });
        expect(down.status).toBe(400); // still validates its input without the database
        const launch = await hostFlow(svcOf(c), { vmId: 'vm1' });
        expect(launch.launch.status).toBe(503);
        expect(launch.launch.headers['retry-after']).toBe('5');
        expect(launch.launch.json).toEqual({
          error: 'database-unavailable',
          message: 'the service is temporarily unavailable; try again shortly',
        });
        cluster.startServer();
      },
    });
    expect(launchedBefore.validate?.status).toBe(200);
    expect(launchedBefore.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('pass one');
    const after = await hostFlow(svcOf(c), { vmId: 'vm1', validateBase: b.url });
    expect(after.validate?.status).toBe(200);
  }, 90_000);

  it('PostgreSQL restarted mid-traffic: every answer is 200 or 503, and traffic recovers', async () => {
    const [b, c] = started.slice(-2) as [StartedServe, StartedServe];
    const statuses: number[] = [];
    let stop = false;
    const worker = async (i: number) => {
      while (!stop) {
        const [l, v] = i % 2 === 0 ? [b, c] : [c, b];
        let r: Awaited<ReturnType<typeof hostFlow>>;
        try {
          r = await hostFlow(svcOf(l), { vmId: 'vm1', validateBase: v.url });
        } catch (e) {
          // A replica that drops the connection is a failure: say which, with its last words.
          throw new Error(
            `${(e as Error).message}; replica stderr: ${l.stderr().slice(-2000)} / ${v.stderr().slice(-2000)}`,
            { cause: e },
          );
        }
        statuses.push(r.launch.status);
        if (r.validate) statuses.push(r.validate.status);
        if (r.validate?.status === 200) expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('pass one');
      }
    };
    const workers = [0, 1, 2, 3].map((i) => worker(i));
    await new Promise((r) => setTimeout(r, 1500));
    cluster.restart();
    await new Promise((r) => setTimeout(r, 2500));
    stop = true;
    await Promise.all(workers);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    // Recovered: a fresh flow across replicas succeeds.
    const r = await hostFlow(svcOf(b), { vmId: 'vm1', validateBase: c.url });
    expect(r.validate?.status).toBe(200);
  }, 90_000);
});
