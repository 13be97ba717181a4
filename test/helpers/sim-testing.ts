/**
 * Test helper: a minimal guest-owner session builder with CHOSEN TEK/TIK, so known-answer vectors
 * (e.g. sevctl's TIK files) can be run through a whole simulated launch. It is not the product's owner
 * side (that is app/sev/session.ts, checked against the simulator in test/roundtrip.test.ts).
 */
import { createECDH, randomBytes } from 'node:crypto';
import { concat, reversed, u32le } from '../../app/sev/bytes';
import { Algo, newEccCert, serializeSevCert, Usage } from '../../app/sev/cert';
import { aes128Ctr, firmwareKdf, hmacSha256 } from '../../app/sim/firmware-crypto';

/** Builds a GODH cert and a 128-byte session blob for the given PDH and transport keys. */
export function buildSessionForTest(p: {
  pdh: Uint8Array;
  policy: number;
  tek: Uint8Array;
  tik: Uint8Array;
}): { ownerCert: Uint8Array; session: Uint8Array } {
  const godh = createECDH('secp384r1');
  const pub = godh.generateKeys(); // 0x04 || x || y
  const pdhX = reversed(p.pdh.subarray(0x14, 0x14 + 48));
  const pdhY = reversed(p.pdh.subarray(0x5c, 0x5c + 48));
  const z = new Uint8Array(godh.computeSecret(concat(Uint8Array.of(4), pdhX, pdhY)));
  const nonce = new Uint8Array(randomBytes(16));
  const wrapIv = new Uint8Array(randomBytes(16));
  const master = firmwareKdf(z, 'sev-master-secret', nonce);
  const kek = firmwareKdf(master, 'sev-kek', new Uint8Array(0));
  const kik = firmwareKdf(master, 'sev-kik', new Uint8Array(0));
  const wrapTk = aes128Ctr(kek, wrapIv, concat(p.tek, p.tik));
  const session = concat(nonce, wrapTk, wrapIv, hmacSha256(kik, wrapTk), hmacSha256(p.tik, u32le(p.policy)));
  const ownerCert = serializeSevCert(
    newEccCert({
      usage: Usage.PDH,
      algo: Algo.ECDH_SHA256,
      x: new Uint8Array(pub.subarray(1, 49)),
      y: new Uint8Array(pub.subarray(49)),
    }),
  );
  return { ownerCert, session };
}
