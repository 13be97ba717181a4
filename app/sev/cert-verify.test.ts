import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  Algo,
  parseSevCert,
  serializeSevCert,
  sevCertSignatureProblem,
  Usage,
  verifySevCertSignature,
  type SevCertificate,
} from './cert';
import { pinnedAnchor } from './roots';
import { reversed, writeU32le } from './bytes';
import { SevError } from './errors';

const rd = (p: string) =>
  new Uint8Array(readFileSync(path.join(process.cwd(), 'test/fixtures/platforms', p)));
const P384_N = BigInt(
  '0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
);

function bigFromLe(b: Uint8Array): bigint {
  return BigInt('0x' + (Buffer.from(reversed(b)).toString('hex') || '0'));
}
function leFromBig(n: bigint, size: number): Uint8Array {
  return reversed(new Uint8Array(Buffer.from(n.toString(16).padStart(size * 2, '0'), 'hex')));
}

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SevError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'ok';
}

describe('verifySevCertSignature', () => {
  const pek = parseSevCert(rd('rome-real/pek.cert'));
  const oca = parseSevCert(rd('rome-real/oca.cert'));
  const cek = parseSevCert(rd('rome-real/cek.cert'));

  it('accepts bytes or a parsed certificate', () => {
    expect(message(() => verifySevCertSignature(rd('rome-real/pdh.cert'), pek))).toBe('ok');
    expect(message(() => verifySevCertSignature(parseSevCert(rd('rome-real/pdh.cert')), pek))).toBe('ok');
    expect(message(() => verifySevCertSignature(cek, pinnedAnchor('rome').ask))).toBe('ok');
    expect(
      message(() => verifySevCertSignature(rd('naples-real/cek.cert'), pinnedAnchor('naples').ask)),
    ).toBe('ok');
  });

  it('matches slots by usage and algorithm, not position: swapped PEK slots still verify', () => {
    const swapped: SevCertificate = { ...pek, sigs: [pek.sigs[1], pek.sigs[0]] };
    expect(message(() => verifySevCertSignature(swapped, oca))).toBe('ok');
    expect(message(() => verifySevCertSignature(swapped, cek))).toBe('ok');
  });

  it('names the missing slot and refuses non-signing signers', () => {
    const pdh = rd('rome-real/pdh.cert');
    expect(message(() => verifySevCertSignature(pdh, oca))).toBe(
      'bad-signature: OCA -> PDH: no signature slot with usage OCA and algorithm ECDSA_SHA256',
    );
    expect(message(() => verifySevCertSignature(pek, parseSevCert(pdh), 'x'))).toBe(
      'bad-signature: x: the PDH key (ECDH_SHA256) is not a signing key',
    );
    expect(message(() => verifySevCertSignature(cek, pinnedAnchor('rome').ark))).toMatch(/not an ARK/);
  });

  it('an ASK slot with the other RSA algorithm does not match (Rome CEK slot relabelled RSA_SHA256)', () => {
    const b = rd('rome-real/cek.cert');
    writeU32le(b, 0x418, Algo.RSA_SHA256);
    expect(message(() => verifySevCertSignature(b, pinnedAnchor('rome').ask))).toMatch(
      /no signature slot with usage ASK and algorithm RSA_SHA384/,
    );
  });

  it('accepts the high-S form of a firmware signature (s -> n - s), as node:crypto and the firmware do', () => {
    const pdh = parseSevCert(rd('rome-real/pdh.cert'));
    const slot = pdh.sigs[0];
    expect(slot.usage).toBe(Usage.PEK);
    const s = bigFromLe(slot.sig.subarray(72, 120));
    const sig = slot.sig.slice();
    sig.set(leFromBig(P384_N - s, 48), 72);
    const flipped = serializeSevCert({ ...pdh, sigs: [{ ...slot, sig }, pdh.sigs[1]] });
    expect(sevCertSignatureProblem(flipped, pek)).toBeNull();
  });

  it('rejects non-zero bytes in the unused high part of r and in the slot tail', () => {
    for (const off of [0x41c + 48, 0x41c + 72 + 48, 0x41c + 144, 0x41c + 511]) {
      const b = rd('rome-real/pdh.cert');
      b[off] = 1;
      expect(message(() => verifySevCertSignature(b, pek))).toMatch(/signature does not verify/);
    }
  });
});
