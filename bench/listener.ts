/**
 * `npm run bench listener`: launch+validate round trips per second and p50/p99 latency with 50 concurrent
 * simulated hosts on loopback (bounded in time), against the bare HTTP floor of the same server (GET
 * /v1/health, a trivial route behind the same host check, rate limiter and token check).
 *
 * The hosts run in a child process (the simulated firmware's ECDH and hashing must not steal the
 * server's event loop); the server is the real headless service with an in-memory secret store and the
 * real audit log (three events per round trip, group-committed: one write + fdatasync per batch, and
 * the secret release waits for the fdatasync covering it).
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { join } from 'node:path';
import { fromBase64, toBase64 } from '../app/sev/bytes';
import { SimulatedSevPlatform } from '../app/sim/platform';
import { startService } from '../server/serve/serve';
import { InMemorySecretStore } from '../server/services/secret-store';

const HOSTS = 50;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TOKEN = 'bench-owner-token-0123456789abcdef';
const FIRMWARE = new Uint8Array(
  fs.readFileSync(join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin')),
);

interface Stats {
  count: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function post(
  agent: http.Agent,
  url: string,
  path: string,
  body: unknown,
  token?: string,
): Promise<{ status: number; json: Record<string, string> }> {
  const u = new URL(path, url);
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: data ? 'POST' : 'GET',
        headers: {
          ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function runFor(seconds: number, worker: () => Promise<boolean>): Promise<Stats> {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: HOSTS }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const ok = await worker().catch(() => false);
        if (ok) lat.push(performance.now() - t);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return { count: lat.length, errors, seconds: elapsed, p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The child: 50 simulated hosts. */
async function client(): Promise<void> {
  const platform = SimulatedSevPlatform.create({ generation: 'naples', seed: 'bench' });
  const askArkFile = join(process.argv[3]!, 'ask-ark.cert');
  fs.writeFileSync(askArkFile, platform.askArk);
  process.send!({ ready: askArkFile });
  const url: string = await new Promise((resolve) =>
    process.once('message', (m: { url: string }) => resolve(m.url)),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: HOSTS });
  const launchBody = {
    pdh: toBase64(platform.pdh),
    'cert-chain': toBase64(platform.certChain),
    cek: toBase64(platform.signedCek),
    policy: 1,
  };
  // Warm-up (JIT, chain link cache, digest cache).
  for (let i = 0; i < 20; i++) await post(agent, url, '/v1/health', undefined, TOKEN);
  const flow = async (): Promise<boolean> => {
    const l = await post(agent, url, '/v1/vm/bench/launch', launchBody);
    if (l.status !== 200) return false;
    const guest = platform.launchStart({
      policy: 1,
      ownerCert: fromBase64(l.json['owner-cert']),
      session: fromBase64(l.json.session),
    });
    guest.launchUpdateData(FIRMWARE);
    const m = guest.launchMeasure();
    const v = await post(agent, url, `/v1/connections/${l.json.connection}/validate`, {
      'api-major': platform.apiMajor,
      'api-minor': platform.apiMinor,
      'build-id': platform.build,
      policy: 1,
      measurement: toBase64(m),
    });
    if (v.status !== 200) return false;
    guest.launchSecret({
      header: fromBase64(v.json['secret-header']),
      payload: fromBase64(v.json['secret-table']),
    });
    return true;
  };
  const rt = await runFor(SECONDS, flow);
  const floor = await runFor(
    SECONDS,
    async () => (await post(agent, url, '/v1/health', undefined, TOKEN)).status === 200,
  );
  agent.destroy();
  process.send!({ rt, floor });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'sev-bench-listener-'));
  const child = fork(__filename, ['client', dir], { stdio: 'inherit' });
  const askArk: string = await new Promise((resolve) =>
    child.once('message', (m: { ready: string }) => resolve(m.ready)),
  );
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir: dir,
    trustCa: [askArk],
    secretStore: new InMemorySecretStore(),
    ownerToken: TOKEN,
    rateLimit: false,
  });
  const agent = new http.Agent({ keepAlive: true });
  const up = await new Promise<string>((resolve, reject) => {
    const u = new URL('/v1/artifacts', svc.url);
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKEN}` },
      },
      (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(JSON.parse(s).sha256));
      },
    );
    req.on('error', reject);
    req.end(Buffer.from(FIRMWARE));
  });
  const reg = await new Promise<number>((resolve, reject) => {
    const body = Buffer.from(
      JSON.stringify({
        name: 'bench',
        scheme: 'amd-sev',
        policy: 1,
        'firmware-artifact': up,
        approval: 'auto',
        secrets: { type: 'luks-passphrase', passphrase: 'bench' },
      }),
    );
    const u = new URL('/v1/vm/bench', svc.url);
    const req = http.request(
      {
        agent,
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  if (reg !== 200) throw new Error(`registering the bench VM failed: ${reg}`);
  child.send({ url: svc.url });
  const result: { rt: Stats; floor: Stats } = await new Promise((resolve) => child.once('message', resolve));
  await svc.close();
  agent.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  const line = (name: string, s: Stats) =>
    `${name.padEnd(34)} ${(s.count / s.seconds).toFixed(1).padStart(8)}/s  p50 ${s.p50.toFixed(2).padStart(7)} ms  p99 ${s.p99
      .toFixed(2)
      .padStart(7)} ms  (${s.count} ok, ${s.errors} errors, ${s.seconds.toFixed(1)} s)`;
  console.log(
    `${HOSTS} concurrent simulated hosts on loopback, ${os.cpus().length} CPUs, node ${process.version}`,
  );
  console.log(line('launch+validate round trips', result.rt));
  console.log(line('bare HTTP floor (GET /v1/health)', result.floor));
}

if (process.argv[2] === 'client') {
  client().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
