/**
 * `npm run bench scale`: serve --database replicas on one PostgreSQL (a throwaway cluster, fsync on).
 * Launch+validate round trips per second, p50/p99 and CPU seconds per round trip with 1, 2 and 3
 * replicas (the validate goes to the next replica after the launch's) and with 3 replicas behind HAProxy
 * (docs/scale-out/haproxy.cfg, a new TCP connection per request so round robin spreads them); 50
 * concurrent simulated hosts, BENCH_SECONDS (default 10) each.
 *
 * Replicas are child processes of this bench (`scale.cjs replica ...`); the hosts' simulated firmware
 * runs in this process. CPU per round trip counts the replicas and every PostgreSQL process of the
 * cluster (not the hosts, not HAProxy). On a machine with few cores every process shares them: the
 * figures say what one box does, not how far more boxes go.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { join } from 'node:path';
import { fromBase64, toBase64 } from '../app/sev/bytes';
import { SimulatedSevPlatform } from '../app/sim/platform';
import { startService } from '../server/serve/serve';
import { startHaproxy } from '../test/helpers/haproxy';
import { startPgCluster } from '../test/helpers/pg-cluster';

const HOSTS = 50;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TOKEN = 'bench-owner-token-0123456789abcdef';
const FIRMWARE = new Uint8Array(
  fs.readFileSync(join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin')),
);
const CLK_TCK = 100;

/** The child: one replica. argv: replica DATADIR URL KEYFILE ASKARK */
async function replica(): Promise<void> {
  const [, , , dataDir, url, keyFile, askArk] = process.argv;
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir: dataDir!,
    trustCa: [askArk!],
    ownerToken: TOKEN,
    rateLimit: false,
    database: { url: url!, serviceKeyFile: keyFile!, poolSize: 20 },
  });
  process.stdout.write(`port ${svc.port}\n`);
  process.on('SIGTERM', () => void svc.close().finally(() => process.exit(0)));
}

function req(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string; agent?: http.Agent; close?: boolean; raw?: Uint8Array } = {},
): Promise<{ status: number; json: Record<string, string> }> {
  const u = new URL(path, url);
  const data = opts.raw
    ? Buffer.from(opts.raw)
    : body === undefined
      ? undefined
      : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        agent: opts.agent,
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method,
        headers: {
          ...(data
            ? {
                'content-type': opts.raw ? 'application/octet-stream' : 'application/json',
                'content-length': String(data.length),
              }
            : {}),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.close ? { connection: 'close' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          try {
            resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} });
          } catch {
            resolve({ status: res.statusCode ?? 0, json: {} });
          }
        });
      },
    );
    r.on('error', reject);
    r.end(data);
  });
}

function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime (fields 14, 15; f[0] is field 3).
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The postmaster and its children (backends, checkpointer, walwriter...). */
function postgresPids(dataDir: string): number[] {
  const pm = Number(fs.readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const pids = [pm];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pm) pids.push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(join(os.tmpdir(), 'sev-bench-scale-'));
  const cluster = await startPgCluster({ fsync: true });
  const children: ChildProcess[] = [];
  try {
    const url = await cluster.createDatabase('bench');
    const keyFile = join(root, 'service.key');
    fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    const platform = SimulatedSevPlatform.create({ generation: 'naples', seed: 'bench-scale' });
    const askArk = join(root, 'ask-ark.cert');
    fs.writeFileSync(askArk, platform.askArk);

    const replicas: Array<{ url: string; pid: number }> = [];
    for (let i = 0; i < 3; i++) {
      const dataDir = join(root, `replica${i}`);
      fs.mkdirSync(dataDir);
      const child = spawn(process.execPath, [__filename, 'replica', dataDir, url, keyFile, askArk], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          const m = /^port (\d+)$/m.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`replica ${i} exited (${code})`)));
      });
      replicas.push({ url: `http://127.0.0.1:${port}`, pid: child.pid! });
      const up = await req(replicas[i]!.url, 'PUT', '/v1/artifacts', undefined, {
        token: TOKEN,
        raw: FIRMWARE,
      });
      if (up.status !== 200) throw new Error(`artifact upload: ${up.status}`);
      if (i === 0) {
        const reg = await req(
          replicas[0]!.url,
          'PUT',
          '/v1/vm/bench',
          {
            name: 'bench',
            scheme: 'amd-sev',
            policy: 1,
            'firmware-artifact': up.json.sha256,
            approval: 'auto',
            secrets: [{ type: 'luks-passphrase', passphrase: 'bench' }],
          },
          { token: TOKEN },
        );
        if (reg.status !== 200) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.json)}`);
      }
    }
    const haproxy = await startHaproxy(replicas.map((r) => r.url.replace('http://', '')));
    const launchBody = {
      pdh: toBase64(platform.pdh),
      'cert-chain': toBase64(platform.certChain),
      cek: toBase64(platform.signedCek),
      policy: 1,
    };

    const run = async (label: string, targets: string[], close: boolean, pids: number[]) => {
      const agent = new http.Agent({ keepAlive: !close, maxSockets: HOSTS });
      let next = 0;
      const flow = async (): Promise<number | undefined> => {
        const i = next++ % targets.length;
        const launchAt = targets[i]!;
        const validateAt = targets[(i + 1) % targets.length]!;
        const t0 = performance.now();
        const l = await req(launchAt, 'POST', '/v1/vm/bench/launch', launchBody, { agent, close });
        const t1 = performance.now();
        if (l.status !== 200) return undefined;
        const guest = platform.launchStart({
          policy: 1,
          ownerCert: fromBase64(l.json['owner-cert']!),
          session: fromBase64(l.json.session!),
        });
        guest.launchUpdateData(FIRMWARE);
        const body = {
          'api-major': platform.apiMajor,
          'api-minor': platform.apiMinor,
          'build-id': platform.build,
          policy: 1,
          measurement: toBase64(guest.launchMeasure()),
        };
        const t2 = performance.now();
        const v = await req(validateAt, 'POST', `/v1/connections/${l.json.connection}/validate`, body, {
          agent,
          close,
        });
        const t3 = performance.now();
        if (v.status !== 200) return undefined;
        // The service's share of the round trip: the two requests, not the simulated firmware between.
        return t1 - t0 + (t3 - t2);
      };
      // Warm-up (JIT, chain caches on every replica).
      for (let i = 0; i < 2 * targets.length; i++) await flow();
      const allPids = [...pids, ...postgresPids(join(cluster.dir, 'data'))];
      const cpu0 = allPids.reduce((s, p) => s + cpuSeconds(p), 0);
      const lat: number[] = [];
      let errors = 0;
      const start = performance.now();
      const end = start + SECONDS * 1000;
      await Promise.all(
        Array.from({ length: HOSTS }, async () => {
          while (performance.now() < end) {
            const ms = await flow().catch(() => undefined);
            if (ms === undefined) errors++;
            else lat.push(ms);
          }
        }),
      );
      const elapsed = (performance.now() - start) / 1000;
      const cpu = allPids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
      agent.destroy();
      lat.sort((a, b) => a - b);
      const rps = lat.length / elapsed;
      console.log(
        `${label.padEnd(26)} ${rps.toFixed(1).padStart(7)} round trips/s   p50 ${pct(lat, 50).toFixed(1).padStart(6)} ms   ` +
          `p99 ${pct(lat, 99).toFixed(1).padStart(6)} ms   ${((cpu / Math.max(1, lat.length)) * 1000).toFixed(2)} ms CPU/round trip` +
          `   (${lat.length} ok, ${errors} failed)`,
      );
    };

    console.log(
      `${HOSTS} concurrent simulated hosts, ${SECONDS} s each, PostgreSQL ${cluster.port} (fsync on), ${os.cpus().length} cores`,
    );
    const urls = replicas.map((r) => r.url);
    const pids = replicas.map((r) => r.pid);
    await run('1 replica', urls.slice(0, 1), false, pids.slice(0, 1));
    await run('2 replicas (cross)', urls.slice(0, 2), false, pids.slice(0, 2));
    await run('3 replicas (cross)', urls, false, pids);
    await run('3 replicas via HAProxy', [haproxy.url], true, pids);
    await haproxy.stop();
  } finally {
    for (const c of children) {
      c.kill('SIGTERM');
      await new Promise((r) => (c.exitCode !== null ? r(undefined) : c.once('exit', r)));
    }
    cluster.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'replica') {
  replica().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
