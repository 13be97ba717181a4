import { constants, createHash, createHmac, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { concat, fromBase64, readU32le, reversed, toHex } from '../sev/bytes';
import { Algo, parseSevCert, Usage } from '../sev/cert';
import { AmdUsage, parseAmdCert, verifyAmdCertSignature, verifyAmdPair } from '../sev/amd-cert';
import { SimFirmwareError } from './errors';
import { SimulatedSevPlatform } from './platform';
import { buildSessionForTest } from '../../test/helpers/sim-testing';

const fixtures = path.join(process.cwd(), 'test/fixtures/vectors/sevctl');
const read = (p: string) => new Uint8Array(readFileSync(path.join(fixtures, p)));

// Independent of app/sev: raw offsets and node:crypto only.
function p384Key(cert: Uint8Array): KeyObject {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-384',
      x: b64(reversed(cert.subarray(0x14, 0x14 + 48))),
      y: b64(reversed(cert.subarray(0x5c, 0x5c + 48))),
    },
    format: 'jwk',
  });
}

/** Verifies the ECDSA-SHA256 slot (usage, algo) of `cert` under `signerKey`, matching the slot by usage. */
function ecdsaSlotVerifies(cert: Uint8Array, signerUsage: number, signerKey: KeyObject): boolean {
  for (const off of [0x414, 0x61c]) {
    if (readU32le(cert, off) !== signerUsage) continue;
    expect(readU32le(cert, off + 4)).toBe(Algo.ECDSA_SHA256);
    const r = reversed(cert.subarray(off + 8, off + 8 + 48));
    const s = reversed(cert.subarray(off + 8 + 72, off + 8 + 72 + 48));
    return verify(
      'sha256',
      cert.subarray(0, 0x414),
      { key: signerKey, dsaEncoding: 'ieee-p1363' },
      concat(r, s),
    );
  }
  return false;
}

function rsaPssVerifiesLe(data: Uint8Array, sigLe: Uint8Array, key: KeyObject, hash: string): boolean {
  return verify(
    hash,
    data,
    { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha256' ? 32 : 48 },
    reversed(sigLe),
  );
}

function expectStatus(fn: () => unknown, status: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SimFirmwareError);
    expect((e as SimFirmwareError).status).toBe(status);
    return;
  }
  throw new Error(`expected SimFirmwareError ${status}, nothing was thrown`);
}

describe('simulated platform certificates', () => {
  let plat: SimulatedSevPlatform;
  beforeAll(() => {
    plat = SimulatedSevPlatform.create({ apiMajor: 1, apiMinor: 51, build: 3 });
  });

  it('exports a 2084-byte PDH and a 6252-byte PEK||OCA||CEK chain that app/sev/cert.ts parses', () => {
    expect(plat.pdh.length).toBe(2084);
    expect(plat.certChain.length).toBe(6252);
    const pdh = parseSevCert(plat.pdh, 'PDH');
    const pek = parseSevCert(plat.certChain.subarray(0, 2084), 'PEK');
    const oca = parseSevCert(plat.certChain.subarray(2084, 4168), 'OCA');
    const cek = parseSevCert(plat.certChain.subarray(4168), 'CEK');
    expect([pdh.usage, pek.usage, oca.usage, cek.usage]).toEqual([
      Usage.PDH,
      Usage.PEK,
      Usage.OCA,
      Usage.CEK,
    ]);
    expect(pdh.algo).toBe(Algo.ECDH_SHA256);
    expect([pek.algo, oca.algo, cek.algo]).toEqual([Algo.ECDSA_SHA256, Algo.ECDSA_SHA256, Algo.ECDSA_SHA256]);
    expect([pdh.apiMajor, pdh.apiMinor]).toEqual([1, 51]);
    // PEK: sig1 = OCA, sig2 = CEK, as the real exports have it.
    expect(pek.sigs.map((s) => s.usage)).toEqual([Usage.OCA, Usage.CEK]);
    // The exported CEK is unsigned, like current firmware.
    expect(cek.sigs.map((s) => [s.usage, s.algo])).toEqual([
      [Usage.INVALID, Algo.INVALID],
      [Usage.INVALID, Algo.INVALID],
    ]);
  });

  it('PEK->PDH, OCA->PEK, CEK->PEK and OCA self-signatures verify with node:crypto', () => {
    const pek = plat.certChain.subarray(0, 2084);
    const oca = plat.certChain.subarray(2084, 4168);
    const cek = plat.certChain.subarray(4168);
    expect(ecdsaSlotVerifies(plat.pdh, Usage.PEK, p384Key(pek))).toBe(true);
    expect(ecdsaSlotVerifies(pek, Usage.OCA, p384Key(oca))).toBe(true);
    expect(ecdsaSlotVerifies(pek, Usage.CEK, p384Key(cek))).toBe(true);
    expect(ecdsaSlotVerifies(oca, Usage.OCA, p384Key(oca))).toBe(true);
    // negative: PDH is not signed by the OCA; a tampered PDH fails.
    expect(ecdsaSlotVerifies(plat.pdh, Usage.PEK, p384Key(oca))).toBe(false);
    const tampered = Uint8Array.from(plat.pdh);
    tampered[0x20]! ^= 1;
    expect(ecdsaSlotVerifies(tampered, Usage.PEK, p384Key(pek))).toBe(false);
  });

  it('ARK/ASK are valid AMD certs; the ASK signs the KDS-style CEK with RSA-PSS/SHA-256 (Naples-like)', () => {
    expect(plat.ark.length).toBe(832);
    expect(plat.ask.length).toBe(832);
    expect(plat.askArk).toEqual(concat(plat.ask, plat.ark));
    const pair = verifyAmdPair(plat.ark, plat.ask, 'sim roots');
    expect(pair.ask.keyUsage).toBe(AmdUsage.ASK);
    const ask = parseAmdCert(plat.ask, 'ASK', AmdUsage.ASK);
    expect(() => verifyAmdCertSignature(ask, parseAmdCert(plat.ark, 'ARK', AmdUsage.ARK))).not.toThrow();

    expect(toHex(reversed(ask.pubexp)).replace(/^0+/, '')).toBe('10001');
    const signed = plat.signedCek;
    const exported = plat.certChain.subarray(4168);
    expect(toHex(signed.subarray(0x10, 0x414))).toBe(toHex(exported.subarray(0x10, 0x414))); // same key
    expect([signed[4], signed[5]]).toEqual([0, 14]);
    expect(readU32le(signed, 0x414)).toBe(Usage.ASK);
    expect(readU32le(signed, 0x418)).toBe(Algo.RSA_SHA256);
    const askKey = createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(reversed(ask.modulus)).toString('base64url'),
        e: 'AQAB',
      },
      format: 'jwk',
    });
    const sig = signed.subarray(0x41c, 0x41c + 256);
    expect(rsaPssVerifiesLe(signed.subarray(0, 0x414), sig, askKey, 'sha256')).toBe(true);
    expect(rsaPssVerifiesLe(exported.subarray(0, 0x414), sig, askKey, 'sha256')).toBe(false);
    // The real AMD Naples ASK must not verify it.
    const realAsk = parseAmdCert(
      new Uint8Array(readFileSync(path.join(process.cwd(), 'assets/amd-roots/naples/ask.cert'))),
    );
    const realKey = createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(reversed(realAsk.modulus)).toString('base64url'),
        e: 'AQAB',
      },
      format: 'jwk',
    });
    expect(rsaPssVerifiesLe(signed.subarray(0, 0x414), sig, realKey, 'sha256')).toBe(false);
  });

  it('the chip id is a valid big-endian secp256k1 point', () => {
    expect(plat.chipId.length).toBe(64);
    const p = BigInt('0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f');
    const x = BigInt('0x' + toHex(plat.chipId.subarray(0, 32)));
    const y = BigInt('0x' + toHex(plat.chipId.subarray(32)));
    const mod = (v: bigint) => ((v % p) + p) % p;
    expect(mod(y * y)).toBe(mod(x * x * x + 7n));
    expect(x < p && y < p).toBe(true);
  });

  it('a seed reproduces the ECC keys and chip id; different seeds differ', () => {
    const a = SimulatedSevPlatform.create({ seed: 'seed-1' });
    const b = SimulatedSevPlatform.create({ seed: 'seed-1' });
    const c = SimulatedSevPlatform.create({ seed: 'seed-2' });
    expect(toHex(a.pdh.subarray(0, 0x414))).toBe(toHex(b.pdh.subarray(0, 0x414)));
    expect(a.chipId).toEqual(b.chipId);
    expect(toHex(a.pdh.subarray(0, 0x414))).not.toBe(toHex(c.pdh.subarray(0, 0x414)));
  });

  it('exportUnsignedCek: false puts an ASK-signed CEK in the chain', () => {
    const p = SimulatedSevPlatform.create({ exportUnsignedCek: false });
    const cek = p.certChain.subarray(4168);
    expect(readU32le(cek, 0x414)).toBe(Usage.ASK);
    const ask = parseAmdCert(p.ask);
    const askKey = createPublicKey({
      key: { kty: 'RSA', n: Buffer.from(reversed(ask.modulus)).toString('base64url'), e: 'AQAB' },
      format: 'jwk',
    });
    expect(rsaPssVerifiesLe(cek.subarray(0, 0x414), cek.subarray(0x41c, 0x41c + 256), askKey, 'sha256')).toBe(
      true,
    );
  });
});

describe('simulated guest launch', () => {
  let plat: SimulatedSevPlatform;
  beforeAll(() => {
    plat = SimulatedSevPlatform.create({ apiMajor: 1, apiMinor: 49, build: 6 });
  });

  it('runs the sevctl SEV-ES vector through a whole launch (firmware + 4 VMSAs, TIK from tik1.bin)', () => {
    const tik = read('measurement/tik1.bin');
    const tek = new Uint8Array(16).fill(0x5a);
    const policy = 0x05;
    const guest = plat.launchStart({ policy, ...buildSessionForTest({ pdh: plat.pdh, policy, tek, tik }) });
    expect(guest.transportKeysForTest()).toEqual({ tek, tik });
    guest.launchUpdateData(read('OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9'));
    guest.launchUpdateVmsa(read('vmsa0.bin'));
    for (let i = 0; i < 3; i++) guest.launchUpdateVmsa(read('vmsa1.bin'));
    const expected = fromBase64('/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny');
    const blob = guest.launchMeasure({ mnonceForTest: expected.subarray(32) });
    expect(blob).toEqual(expected);
    expect(guest.guestState).toBe('LSECRET');
  });

  it('enforces the command order and ES-only VMSA updates', () => {
    const keys = { tek: new Uint8Array(16).fill(1), tik: new Uint8Array(16).fill(2) };
    const guest = plat.launchStart({
      policy: 1,
      ...buildSessionForTest({ pdh: plat.pdh, policy: 1, ...keys }),
    });
    expectStatus(() => guest.launchUpdateVmsa(new Uint8Array(4096)), 'POLICY_FAILURE');
    expectStatus(() => guest.launchUpdateData(new Uint8Array(15)), 'INVALID_LENGTH');
    expectStatus(
      () => guest.launchSecret({ header: new Uint8Array(52), payload: new Uint8Array(16) }),
      'INVALID_GUEST_STATE',
    );
    expectStatus(() => guest.launchFinish(), 'INVALID_GUEST_STATE');
    guest.launchUpdateData(new Uint8Array(32));
    const m = guest.launchMeasure();
    expect(m.length).toBe(48);
    expect(guest.launchDigestForTest()).toEqual(
      new Uint8Array(createHash('sha256').update(new Uint8Array(32)).digest()),
    );
    expectStatus(() => guest.launchUpdateData(new Uint8Array(16)), 'INVALID_GUEST_STATE');
    expectStatus(() => guest.launchMeasure(), 'INVALID_GUEST_STATE');
    guest.launchFinish();
    expectStatus(
      () => guest.launchSecret({ header: new Uint8Array(52), payload: new Uint8Array(16) }),
      'INVALID_GUEST_STATE',
    );
    expectStatus(() => guest.transportKeysForTest(), 'INVALID_GUEST_STATE');
  });

  it('two launches get fresh mnonces', () => {
    const keys = { tek: new Uint8Array(16), tik: new Uint8Array(16).fill(3) };
    const run = () => {
      const g = plat.launchStart({
        policy: 0,
        ...buildSessionForTest({ pdh: plat.pdh, policy: 0, ...keys }),
      });
      g.setLaunchDigestForTest(new Uint8Array(32));
      return g.launchMeasure();
    };
    expect(toHex(run().subarray(32))).not.toBe(toHex(run().subarray(32)));
  });

  it('LAUNCH_START checks the policy, the GODH and the session', () => {
    const keys = { tek: new Uint8Array(16).fill(1), tik: new Uint8Array(16).fill(2) };
    const ok = buildSessionForTest({ pdh: plat.pdh, policy: 1, ...keys });
    expect(() => plat.launchStart({ policy: 1, ...ok })).not.toThrow();
    expectStatus(() => plat.launchStart({ policy: 3, ...ok }), 'BAD_MEASUREMENT'); // policy_mac
    expectStatus(() => plat.launchStart({ policy: 1 | 0x40, ...ok }), 'POLICY_FAILURE');
    expectStatus(() => plat.launchStart({ policy: 1 | (2 << 16), ...ok }), 'POLICY_FAILURE');
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: ok.ownerCert.subarray(1) }),
      'INVALID_LENGTH',
    );
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, session: ok.session.subarray(1) }),
      'INVALID_LENGTH',
    );
    const mutate = (off: number, v: number) => {
      const c = Uint8Array.from(ok.ownerCert);
      c[off] = v;
      return c;
    };
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0, 2) }),
      'INVALID_CERTIFICATE',
    );
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0x08, 0x02) }),
      'INVALID_CERTIFICATE',
    );
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0x0c, 0x02) }),
      'INVALID_CERTIFICATE',
    );
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0x10, 1) }),
      'INVALID_CERTIFICATE',
    );
    expectStatus(
      () => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0x14 + 50, 1) }),
      'INVALID_CERTIFICATE',
    );
    // The firmware does not check GODH signatures or api fields.
    expect(() => plat.launchStart({ policy: 1, ...ok, ownerCert: mutate(0x41c, 9) })).not.toThrow();
  });

  it('a pre-0.17 platform measures without the 0x04||api||build prefix', () => {
    const old = SimulatedSevPlatform.create({ apiMajor: 0, apiMinor: 16, build: 1 });
    const tik = new Uint8Array(16).fill(4);
    const g = old.launchStart({
      policy: 0,
      ...buildSessionForTest({ pdh: old.pdh, policy: 0, tek: new Uint8Array(16), tik }),
    });
    g.setLaunchDigestForTest(new Uint8Array(32).fill(9));
    const blob = g.launchMeasure({ mnonceForTest: new Uint8Array(16).fill(7) });
    const expected = createHmac('sha256', tik)
      .update(concat(new Uint8Array(4), new Uint8Array(32).fill(9), new Uint8Array(16).fill(7)))
      .digest('hex');
    expect(toHex(blob.subarray(0, 32))).toBe(expected);
  });
});
