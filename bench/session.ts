/**
 * Launch sessions created per second (fresh P-384 owner key, ECDH with the PDH, KDF, wrap, MACs, owner
 * cert) and measurement checks per second, on one core; then LaunchSession.createAsync (key generation
 * and ECDH on the libuv thread pool) with N concurrent creations, with the CPU the main thread (the
 * service's event loop) pays per session.
 */
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Algo, Usage, newEccCert, serializeSevCert } from '../app/sev/cert';
import { LaunchSession } from '../app/sev/session';
import { computeMeasurement, verifyMeasurement } from '../app/sev/measurement';
import { concat } from '../app/sev/bytes';

function rate(name: string, seconds: number, fn: () => void): number {
  for (let i = 0; i < 50; i++) fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    now = process.hrtime.bigint();
  }
  const perSec = n / (Number(now - start) / 1e9);
  console.log(
    `${name.padEnd(34)} ${perSec.toFixed(0).padStart(9)} /s  (${n} in ${(Number(now - start) / 1e9).toFixed(2)} s)`,
  );
  return perSec;
}

const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const jwk = publicKey.export({ format: 'jwk' });
const pdhCert = newEccCert({
  usage: Usage.PDH,
  algo: Algo.ECDH_SHA256,
  x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
  y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
});
const pdhBytes = serializeSevCert(pdhCert);

// The floor: one P-384 key generation plus one ECDH, which every session needs.
const pdhPoint = Buffer.concat([
  Buffer.of(4),
  Buffer.from(jwk.x!, 'base64url'),
  Buffer.from(jwk.y!, 'base64url'),
]);
rate('baseline: P-384 keygen + ECDH', 3, () => {
  const e = createECDH('secp384r1');
  e.generateKeys();
  e.computeSecret(pdhPoint);
});
rate('LaunchSession.create (PDH bytes)', 3, () => {
  LaunchSession.create({ pdh: pdhBytes, policy: 0x5 }).wipe();
});
rate('LaunchSession.create (parsed PDH)', 3, () => {
  LaunchSession.create({ pdh: pdhCert, policy: 0x5 }).wipe();
});

const tik = new Uint8Array(randomBytes(16));
const digest = new Uint8Array(randomBytes(32));
const mnonce = new Uint8Array(randomBytes(16));
const params = { tik, apiMajor: 1, apiMinor: 49, build: 6, policy: 5, digest };
const blob = concat(computeMeasurement({ ...params, mnonce }), mnonce);
rate('verifyMeasurement (48-byte blob)', 3, () => {
  if (!verifyMeasurement({ ...params, measurement: blob })) throw new Error('measurement did not verify');
});

/** CPU ms of the main thread alone (Linux /proc; 10 ms ticks), or undefined elsewhere. */
function mainThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Sessions per second with `concurrency` creations in flight, and CPU ms per session. */
async function rateAsync(name: string, seconds: number, concurrency: number, fn: () => Promise<void>) {
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  const main0 = mainThreadCpuMs();
  const all0 = processCpuMs();
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await fn();
        n++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const main1 = mainThreadCpuMs();
  const mainMs = main0 === undefined || main1 === undefined ? 'n/a' : ((main1 - main0) / n).toFixed(2);
  const allMs = ((processCpuMs() - all0) / n).toFixed(2);
  console.log(
    `${name.padEnd(34)} ${(n / elapsed).toFixed(0).padStart(9)} /s  (${n} in ${elapsed.toFixed(2)} s; CPU ms/session: main thread ${mainMs}, all threads ${allMs})`,
  );
}

async function asyncFigures(): Promise<void> {
  console.log(`-- libuv thread pool size ${process.env.UV_THREADPOOL_SIZE ?? 4} (UV_THREADPOOL_SIZE)`);
  await rateAsync('create, sequential (for CPU/session)', 3, 1, async () => {
    LaunchSession.create({ pdh: pdhBytes, policy: 0x5 }).wipe();
  });
  for (const n of [1, 2, 4, 16, 64]) {
    await rateAsync(`createAsync, ${n} concurrent`, 3, n, async () => {
      (await LaunchSession.createAsync({ pdh: pdhBytes, policy: 0x5 })).wipe();
    });
  }
}

asyncFigures().catch((e) => {
  console.error(e);
  process.exit(1);
});
