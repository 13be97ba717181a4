/**
 * `npm run bench snp-service`: SEV-SNP guests' full KBS round trips (POST /kbs/v0/auth, POST
 * /kbs/v0/attest, GET /kbs/v0/resource) against the real headless service on loopback: 50 concurrent
 * simulated guests (app/sim SnpGuestClient on a SimulatedSnpFirmware) for 10 s, auto approval.
 *
 * The service runs in a child process so its event-loop figures (performance.eventLoopUtilization,
 * monitorEventLoopDelay, process.cpuUsage) count only its own work: per round trip it parses the
 * evidence, verifies the report (ECDSA P-384; the VCEK, chain and CRL are memoised after the first),
 * appraises it, issues an ES256 token, encrypts the secret to the guest's key (ECDH-ES P-256) and writes
 * the audit events. The guests (report signing, ECDH, AES-GCM) run in this process; the key-server
 * stand-in too (one VCEK and one CRL fetch, then the service's cache).
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { secretAccount, VmProfileSchema } from '../app/profile';
import { SnpKdsClient } from '../app/snp/kds';
import { makeRootSet, SnpTrustStore } from '../app/snp/roots';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware } from '../app/sim/snp-firmware';
import { SnpGuestClient } from '../app/sim/snp-guest';
import { startService } from '../server/serve/serve';
import { InMemorySecretStore } from '../server/services/secret-store';

const GUESTS = Number(process.env.BENCH_GUESTS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TOKEN = 'bench-owner-token-0123456789abcdef';
const RESOURCE = 'bench/key/disk';
const SECRET = 'bench disk passphrase';
const GUID = '5b1b9d3c-7a0e-4c57-9d43-2f1c4a8e6b10';

interface ServiceReady {
  type: 'ready';
  url: string;
}
interface ServiceFigures {
  type: 'figures';
  elapsedMs: number;
  activeMs: number;
  utilization: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
}

// --- the service (child process) -------------------------------------------------------------------------
async function serviceMain(): Promise<void> {
  const env = process.env;
  const d = (k: string) => new Uint8Array(Buffer.from(env[k]!, 'base64'));
  const set = makeRootSet(
    'Milan',
    { ark: d('BENCH_ARK'), ask: d('BENCH_ASK'), asvk: d('BENCH_ASVK') },
    'bench',
  );
  const dataDir = fs.mkdtempSync(join(os.tmpdir(), 'bench-snp-service-'));
  const secrets = new InMemorySecretStore();
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    secretStore: secrets,
    ownerToken: TOKEN,
    rateLimit: false,
    kdsUrl: env.BENCH_KDS_URL!,
    kbs: {
      keys: new SnpKdsClient({ baseUrl: env.BENCH_KDS_URL!, cacheDir: join(dataDir, 'snp-kds-cache') }),
      trust: SnpTrustStore.of([set]),
      // One loopback address is one client group: the per-client cap is raised for 50 guests.
      maxSessions: 1_000_000,
      maxSessionsPerClient: 1_000_000,
    },
  });
  svc.profiles.put(
    VmProfileSchema.parse({
      id: 'bench',
      name: 'bench SNP guest',
      scheme: 'amd-sev-snp',
      policy: Number(DEFAULT_SNP_POLICY),
      cpuCounts: [1],
      firmware: { kind: 'digests', launchDigests: [env.BENCH_MEASUREMENT!] },
      approval: 'auto',
      secrets: [{ guid: GUID, kind: 'luks-passphrase', resource: RESOURCE }],
      snp: {},
    }),
  );
  await secrets.set(secretAccount('bench', GUID), Buffer.from(SECRET));

  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let elu0 = performance.eventLoopUtilization();
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  process.on('message', (m: { type: string }) => {
    if (m.type === 'start') {
      histogram.reset();
      histogram.enable();
      elu0 = performance.eventLoopUtilization();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    } else if (m.type === 'stop') {
      histogram.disable();
      const elu = performance.eventLoopUtilization(elu0);
      const cpu = process.cpuUsage(cpu0);
      const figures: ServiceFigures = {
        type: 'figures',
        elapsedMs: performance.now() - t0,
        activeMs: elu.active,
        utilization: elu.utilization,
        cpuUserMs: cpu.user / 1000,
        cpuSystemMs: cpu.system / 1000,
        delayP50Ms: histogram.percentile(50) / 1e6,
        delayP99Ms: histogram.percentile(99) / 1e6,
        delayMaxMs: histogram.max / 1e6,
      };
      process.send!(figures);
    } else if (m.type === 'exit') {
      void svc.close().then(() => {
        fs.rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  process.send!({ type: 'ready', url: svc.url } satisfies ServiceReady);
}

// --- the guests (this process) ---------------------------------------------------------------------------
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const setupStart = performance.now();
  const fw = await SimulatedSnpFirmware.create({ product: 'Milan' });
  const kds = await fw.kdsStandIn();
  const measurement = sha384('bench SNP guest image');
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  const child = fork(__filename, ['--service'], {
    env: {
      ...process.env,
      BENCH_ARK: b64(fw.roots.ark),
      BENCH_ASK: b64(fw.roots.ask),
      BENCH_ASVK: b64(fw.roots.asvk),
      BENCH_KDS_URL: kds.url,
      BENCH_MEASUREMENT: Buffer.from(measurement).toString('hex'),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: { type: string }) => {
        if (m.type === type) {
          child.off('message', onMessage);
          resolve(m as T);
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`the service process exited (${code})`)));
    });
  const { url } = await next<ServiceReady>('ready');

  const guests = Array.from({ length: GUESTS }, () => {
    const guest = fw.launch({ measurement, policy: DEFAULT_SNP_POLICY });
    return new SnpGuestClient({ baseUrl: url, guest });
  });
  // Warm-up: the service fetches the VCEK and the CRL once, and every connection opens.
  await Promise.all(guests.map((g) => g.handshake().then(() => g.fetchResourceOnce(RESOURCE))));
  const setupSeconds = (performance.now() - setupStart) / 1000;

  const latencies: number[] = [];
  const errors: string[] = [];
  child.send({ type: 'start' });
  const started = performance.now();
  const end = started + SECONDS * 1000;
  await Promise.all(
    guests.map(async (g) => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          await g.handshake();
          const r = await g.fetchResourceOnce(RESOURCE);
          if (!r.value || Buffer.from(r.value).toString() !== SECRET) {
            throw r.error ?? new Error('the decrypted resource is not the stored secret');
          }
          latencies.push(performance.now() - t);
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const figuresP = next<ServiceFigures>('figures');
  child.send({ type: 'stop' });
  const f = await figuresP;
  child.send({ type: 'exit' });
  await new Promise((r) => child.once('exit', r));
  guests.forEach((g) => g.close());
  await kds.stop();

  latencies.sort((a, b) => a - b);
  const n = latencies.length;
  const perRt = (ms: number) => (n ? (ms / n).toFixed(2) : 'n/a');
  console.log(`setup (RSA-4096 roots, service start, warm-up): ${setupSeconds.toFixed(1)} s`);
  console.log(`${GUESTS} concurrent SNP guests, ${elapsed.toFixed(1)} s, auto approval, P-256 tee keys`);
  console.log(`  round trips (auth + attest + resource): ${n}, ${(n / elapsed).toFixed(1)} /s`);
  console.log(`  latency p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`);
  console.log(`  errors: ${errors.length}${errors.length ? ` (first: ${errors[0]})` : ''}`);
  console.log(
    `  service event loop: utilization ${(f.utilization * 100).toFixed(1)}%, active ${perRt(f.activeMs)} ms per round trip`,
  );
  console.log(
    `  service CPU: ${perRt(f.cpuUserMs + f.cpuSystemMs)} ms per round trip (user ${perRt(f.cpuUserMs)}, system ${perRt(f.cpuSystemMs)})`,
  );
  console.log(
    `  service event-loop delay: p50 ${f.delayP50Ms.toFixed(2)} ms, p99 ${f.delayP99Ms.toFixed(2)} ms, max ${f.delayMaxMs.toFixed(2)} ms`,
  );
  if (errors.length) process.exitCode = 1;
}

if (process.argv.includes('--service')) {
  serviceMain().catch((e: unknown) => {
    console.error('bench service:', e);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
