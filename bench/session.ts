/**
 * Launch sessions created per second (fresh P-384 owner key, ECDH with the PDH, KDF, wrap, MACs, owner
 * cert) and measurement checks per second, on one core.
 */
import { createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
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
