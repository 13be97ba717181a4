import { describe, expect, it } from 'vitest';
import { createDecipheriv, createECDH, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  buildSessionBlob,
  deriveSessionKeys,
  ecdhSecretAsync,
  LaunchSession,
  parseSessionBlob,
  pdhPublicPoint,
} from './session';
import { Algo, Curve, Usage, newEccCert, parseSevCert, serializeSevCert } from './cert';
import { fromHex, readU32le, toHex, writeU32le } from './bytes';
import { SevError } from './errors';
import { SimulatedSevPlatform } from '../sim/platform';

const zero16 = () => new Uint8Array(16);

describe('session blob known answers (virtee/sev session/mod.rs `session`)', () => {
  it('wrap_tk, wrap_mac and policy_mac match', () => {
    const blob = buildSessionBlob({
      z: zero16(),
      nonce: zero16(),
      wrapIv: zero16(),
      tek: zero16(),
      tik: zero16(),
      policy: 0,
    });
    expect(blob.length).toBe(128);
    const f = parseSessionBlob(blob);
    expect(toHex(f.nonce)).toBe('00'.repeat(16));
    expect(toHex(f.wrapIv)).toBe('00'.repeat(16));
    expect(toHex(f.wrapTk)).toBe('2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4');
    expect(toHex(f.wrapMac)).toBe('3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d');
    expect(toHex(f.policyMac)).toBe('aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af');
  });

  it('deriveSessionKeys gives the master of the KDF vector', () => {
    const k = deriveSessionKeys(zero16(), zero16());
    expect(toHex(k.master)).toBe('ab4d269fcc62bedb4511d56c386ce706');
    expect(toHex(k.kek)).not.toBe(toHex(k.kik));
  });
});

// ---- An independent re-implementation of the firmware side (ASPFW establish_channel) ----

function nobleKdf(key: Uint8Array, label: string, ctx: Uint8Array): Uint8Array {
  const msg = Uint8Array.from([1, 0, 0, 0, ...new TextEncoder().encode(label), 0, ...ctx, 0x80, 0, 0, 0]);
  return hmac(sha256, key, msg).slice(0, 16);
}

function firmwareOpenSession(pdhPrivate: Uint8Array, godhCert: Uint8Array, session: Uint8Array) {
  // sev_cert_sanity_check(dh_cert, PDH, ECDH_SHA256), reading fields by offset.
  expect(godhCert.length).toBe(2084);
  expect(readU32le(godhCert, 0)).toBe(1);
  expect(readU32le(godhCert, 8)).toBe(0x1003);
  expect(readU32le(godhCert, 0xc)).toBe(0x003);
  expect(readU32le(godhCert, 0x10)).toBe(2);
  const qx = Uint8Array.from(godhCert.subarray(0x14, 0x14 + 48)).reverse();
  const qy = Uint8Array.from(godhCert.subarray(0x5c, 0x5c + 48)).reverse();
  const shared = p384.getSharedSecret(pdhPrivate, Uint8Array.from([4, ...qx, ...qy]));
  const z = shared.slice(1); // drop the SEC1 prefix: 48-byte big-endian x
  const nonce = session.subarray(0, 16);
  const wrapTk = session.subarray(16, 48);
  const wrapIv = session.subarray(48, 64);
  const wrapMac = session.subarray(64, 96);
  const policyMac = session.subarray(96, 128);
  const master = nobleKdf(z, 'sev-master-secret', nonce);
  const kek = nobleKdf(master, 'sev-kek', new Uint8Array(0));
  const kik = nobleKdf(master, 'sev-kik', new Uint8Array(0));
  const macOk = toHex(hmac(sha256, kik, wrapTk)) === toHex(wrapMac);
  const d = createDecipheriv('aes-128-ctr', kek, wrapIv);
  const tk = new Uint8Array(Buffer.concat([d.update(wrapTk), d.final()]));
  const tek = tk.slice(0, 16);
  const tik = tk.slice(16);
  return {
    macOk,
    tek,
    tik,
    policyOk: (policy: number) => {
      const p = new Uint8Array(4);
      writeU32le(p, 0, policy);
      return toHex(hmac(sha256, tik, p)) === toHex(policyMac);
    },
  };
}

function pdhKeyPair(): { priv: Uint8Array; cert: Uint8Array } {
  const priv = p384.utils.randomSecretKey();
  const pub = p384.getPublicKey(priv, false);
  const cert = serializeSevCert(
    newEccCert({
      usage: Usage.PDH,
      algo: Algo.ECDH_SHA256,
      x: pub.subarray(1, 49),
      y: pub.subarray(49),
      apiMajor: 1,
      apiMinor: 51,
    }),
  );
  return { priv, cert };
}

describe('LaunchSession', () => {
  it('creates a session the firmware side accepts (wrap_mac, unwrap, policy_mac)', () => {
    const pdh = pdhKeyPair();
    const s = LaunchSession.create({ pdh: pdh.cert, policy: 0x0005 });
    expect(s.sessionBlob.length).toBe(128);
    expect(s.ownerCert.length).toBe(2084);
    const fw = firmwareOpenSession(pdh.priv, s.ownerCert, s.sessionBlob);
    expect(fw.macOk).toBe(true);
    expect(toHex(fw.tek)).toBe(toHex(s.tek));
    expect(toHex(fw.tik)).toBe(toHex(s.tik));
    expect(fw.policyOk(0x0005)).toBe(true);
    expect(fw.policyOk(0x0001)).toBe(false);
    expect(toHex(s.tk)).toBe(toHex(fw.tek) + toHex(fw.tik));
    expect(Buffer.from(s.sessionBlobBase64, 'base64').equals(Buffer.from(s.sessionBlob))).toBe(true);
  });

  it('fails the firmware check with a different PDH private key', () => {
    const pdh = pdhKeyPair();
    const other = pdhKeyPair();
    const s = LaunchSession.create({ pdh: pdh.cert, policy: 1 });
    expect(firmwareOpenSession(other.priv, s.ownerCert, s.sessionBlob).macOk).toBe(false);
  });

  it('writes the owner cert as sevctl does: PDH usage, ECDH_SHA256, api 0.0, empty signature slots', () => {
    const s = LaunchSession.create({ pdh: pdhKeyPair().cert, policy: 1 });
    const c = parseSevCert(s.ownerCert);
    expect(c.usage).toBe(Usage.PDH);
    expect(c.algo).toBe(Algo.ECDH_SHA256);
    expect([c.apiMajor, c.apiMinor]).toEqual([0, 0]);
    expect(c.pubkey.kind === 'ecc' && c.pubkey.curve).toBe(Curve.P384);
    for (const slot of c.sigs) {
      expect(slot.usage).toBe(Usage.INVALID);
      expect(slot.algo).toBe(Algo.INVALID);
      expect(slot.sig.every((b) => b === 0)).toBe(true);
    }
  });

  it('is fresh every time: nonce, keys, IV and owner key all differ', () => {
    const pdh = pdhKeyPair().cert;
    const a = LaunchSession.create({ pdh, policy: 1 });
    const b = LaunchSession.create({ pdh, policy: 1 });
    const fa = parseSessionBlob(a.sessionBlob);
    const fb = parseSessionBlob(b.sessionBlob);
    expect(toHex(fa.nonce)).not.toBe(toHex(fb.nonce));
    expect(toHex(fa.wrapIv)).not.toBe(toHex(fb.wrapIv));
    expect(toHex(a.tek)).not.toBe(toHex(b.tek));
    expect(toHex(a.tik)).not.toBe(toHex(b.tik));
    expect(toHex(a.ownerCert)).not.toBe(toHex(b.ownerCert));
  });

  it('uses the given random source for TEK, TIK, nonce and wrap IV (in that order)', () => {
    let counter = 0;
    const s = LaunchSession.create({
      pdh: pdhKeyPair().cert,
      policy: 1,
      random: (n) => new Uint8Array(n).fill(++counter),
    });
    expect(toHex(s.tek)).toBe('01'.repeat(16));
    expect(toHex(s.tik)).toBe('02'.repeat(16));
    const f = parseSessionBlob(s.sessionBlob);
    expect(toHex(f.nonce)).toBe('03'.repeat(16));
    expect(toHex(f.wrapIv)).toBe('04'.repeat(16));
  });

  it('wipe() zeroes TEK/TIK and later use throws', () => {
    const s = LaunchSession.create({ pdh: pdhKeyPair().cert, policy: 1 });
    const tek = s.tek;
    const tik = s.tik;
    s.wipe();
    expect(s.wiped).toBe(true);
    expect(tek.every((b) => b === 0)).toBe(true);
    expect(tik.every((b) => b === 0)).toBe(true);
    expect(() => s.tek).toThrow(/wiped/);
    expect(() => s.tik).toThrow(/wiped/);
    expect(() => s.tk).toThrow(SevError);
  });

  it('accepts a node:crypto generated PDH and a parsed certificate', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const jwk = (publicKey as KeyObject).export({ format: 'jwk' });
    const cert = newEccCert({
      usage: Usage.PDH,
      algo: Algo.ECDH_SHA256,
      x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
      y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
    });
    expect(LaunchSession.create({ pdh: cert, policy: 1 }).sessionBlob.length).toBe(128);
  });

  describe('rejects an unusable PDH with the exact SevError', () => {
    const base = () => parseSevCert(pdhKeyPair().cert);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(SevError);
        return (e as SevError).code;
      }
      return 'no error';
    };
    it('wrong usage', () => {
      const c = base();
      c.usage = Usage.PEK;
      expect(code(() => LaunchSession.create({ pdh: c, policy: 1 }))).toBe('bad-usage');
    });
    it('wrong algorithm', () => {
      const c = base();
      c.algo = Algo.ECDSA_SHA256;
      expect(code(() => LaunchSession.create({ pdh: c, policy: 1 }))).toBe('bad-algorithm');
    });
    it('P-256 curve', () => {
      const c = base();
      if (c.pubkey.kind === 'ecc') c.pubkey.curve = Curve.P256;
      expect(code(() => LaunchSession.create({ pdh: c, policy: 1 }))).toBe('bad-curve');
    });
    it('point not on the curve', () => {
      const c = base();
      if (c.pubkey.kind === 'ecc') c.pubkey.qy[0]! ^= 1;
      expect(code(() => LaunchSession.create({ pdh: c, policy: 1 }))).toBe('bad-key');
    });
    it('truncated certificate bytes', () => {
      expect(code(() => LaunchSession.create({ pdh: new Uint8Array(100), policy: 1 }))).toBe('bad-length');
    });
    it('reserved policy bits', () => {
      expect(code(() => LaunchSession.create({ pdh: pdhKeyPair().cert, policy: 0x40 }))).toBe('bad-policy');
    });
    it('a random source returning the wrong length', () => {
      expect(
        code(() =>
          LaunchSession.create({ pdh: pdhKeyPair().cert, policy: 1, random: () => new Uint8Array(3) }),
        ),
      ).toBe('bad-length');
    });
  });

  it('buildSessionBlob rejects wrong key and nonce sizes', () => {
    const ok = { z: zero16(), nonce: zero16(), wrapIv: zero16(), tek: zero16(), tik: zero16(), policy: 0 };
    expect(() => buildSessionBlob({ ...ok, tek: new Uint8Array(15) })).toThrow(/TEK must be 16 bytes/);
    expect(() => buildSessionBlob({ ...ok, nonce: fromHex('00') })).toThrow(/nonce must be 16 bytes/);
    expect(() => parseSessionBlob(new Uint8Array(127))).toThrow(/128 bytes/);
  });
});

describe('LaunchSession.createAsync (owner key and ECDH on the thread pool)', () => {
  const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const ECDH_P384 = { name: 'ECDH', namedCurve: 'P-384' } as const;

  /** Z from one owner private scalar d by both paths: node's sync ECDH (create) and WebCrypto (createAsync). */
  async function bothZ(d: Uint8Array, pdhCert: Uint8Array) {
    const pdhPoint = pdhPublicPoint(pdhCert);
    const ecdh = createECDH('secp384r1');
    ecdh.setPrivateKey(d);
    const syncZ = new Uint8Array(ecdh.computeSecret(pdhPoint));
    const pub = new Uint8Array(ecdh.getPublicKey());
    const ownerPrivate = await webcrypto.subtle.importKey(
      'jwk',
      {
        kty: 'EC',
        crv: 'P-384',
        x: b64u(pub.subarray(1, 49)),
        y: b64u(pub.subarray(49)),
        d: b64u(d),
      },
      ECDH_P384,
      false,
      ['deriveBits'],
    );
    const pdhPublic = await webcrypto.subtle.importKey('raw', pdhPoint, ECDH_P384, false, []);
    return { syncZ, asyncZ: await ecdhSecretAsync(ownerPrivate, pdhPublic) };
  }

  it('derives the same Z as the sync path from the same owner key: 48-byte big-endian x', async () => {
    const pdh = pdhKeyPair();
    for (let i = 0; i < 8; i++) {
      const d = p384.utils.randomSecretKey();
      const { syncZ, asyncZ } = await bothZ(d, pdh.cert);
      expect(asyncZ.length).toBe(48);
      expect(toHex(asyncZ)).toBe(toHex(syncZ));
      // and both are the x coordinate the firmware computes (noble, independent of OpenSSL)
      expect(toHex(asyncZ)).toBe(toHex(p384.getSharedSecret(pdh.priv, p384.getPublicKey(d)).slice(1)));
    }
  });

  it('keeps the leading zero bytes of an x coordinate that has them', async () => {
    const pdh = pdhKeyPair();
    const pdhPoint = pdhPublicPoint(pdh.cert);
    // About one owner key in 256 gives an x coordinate starting with a zero byte.
    let ecdh = createECDH('secp384r1');
    for (let tries = 0; tries < 10_000; tries++) {
      ecdh = createECDH('secp384r1');
      ecdh.generateKeys();
      if (ecdh.computeSecret(pdhPoint)[0] === 0) break;
    }
    const key = new Uint8Array(ecdh.getPrivateKey());
    const d = new Uint8Array(48);
    d.set(key, 48 - key.length);
    const { syncZ, asyncZ } = await bothZ(d, pdh.cert);
    expect(asyncZ.length).toBe(48);
    expect(asyncZ[0]).toBe(0);
    expect(toHex(asyncZ)).toBe(toHex(syncZ));
    expect(toHex(asyncZ)).toBe(toHex(p384.getSharedSecret(pdh.priv, p384.getPublicKey(d)).slice(1)));
  });

  it('creates a session the firmware side accepts (wrap_mac, unwrap, policy_mac)', async () => {
    const pdh = pdhKeyPair();
    const s = await LaunchSession.createAsync({ pdh: pdh.cert, policy: 0x0005 });
    expect(s.sessionBlob.length).toBe(128);
    expect(s.ownerCert.length).toBe(2084);
    const fw = firmwareOpenSession(pdh.priv, s.ownerCert, s.sessionBlob);
    expect(fw.macOk).toBe(true);
    expect(toHex(fw.tek)).toBe(toHex(s.tek));
    expect(toHex(fw.tik)).toBe(toHex(s.tik));
    expect(fw.policyOk(0x0005)).toBe(true);
    expect(fw.policyOk(0x0001)).toBe(false);
    expect(firmwareOpenSession(pdhKeyPair().priv, s.ownerCert, s.sessionBlob).macOk).toBe(false);
  });

  it('the simulated firmware (app/sim) unwraps the TEK/TIK of a createAsync session', async () => {
    const plat = SimulatedSevPlatform.create({ seed: 'create-async' });
    const s = await LaunchSession.createAsync({ pdh: plat.pdh, policy: 1 });
    const guest = plat.launchStart({ policy: 1, ownerCert: s.ownerCert, session: s.sessionBlob });
    expect(guest.transportKeysForTest()).toEqual({ tek: s.tek, tik: s.tik });
  });

  it('writes the same owner cert format as create: PDH usage, ECDH_SHA256, api 0.0, empty slots', async () => {
    const s = await LaunchSession.createAsync({ pdh: pdhKeyPair().cert, policy: 1 });
    const c = parseSevCert(s.ownerCert);
    expect([c.usage, c.algo, c.apiMajor, c.apiMinor]).toEqual([Usage.PDH, Algo.ECDH_SHA256, 0, 0]);
    expect(c.pubkey.kind === 'ecc' && c.pubkey.curve).toBe(Curve.P384);
    expect(c.sigs.every((slot) => slot.usage === Usage.INVALID && slot.sig.every((b) => b === 0))).toBe(true);
  });

  it('is fresh for every launch, also when created concurrently', async () => {
    const pdh = parseSevCert(pdhKeyPair().cert);
    const all = await Promise.all(
      Array.from({ length: 8 }, () => LaunchSession.createAsync({ pdh, policy: 1 })),
    );
    for (const field of ['nonce', 'wrapIv', 'wrapTk'] as const) {
      expect(new Set(all.map((s) => toHex(parseSessionBlob(s.sessionBlob)[field]))).size).toBe(8);
    }
    expect(new Set(all.map((s) => toHex(s.ownerCert))).size).toBe(8);
    expect(new Set(all.map((s) => toHex(s.tk))).size).toBe(8);
  });

  it('draws TEK, TIK, nonce and wrap IV from the random source in the same order as create', async () => {
    let counter = 0;
    const s = await LaunchSession.createAsync({
      pdh: pdhKeyPair().cert,
      policy: 1,
      random: (n) => new Uint8Array(n).fill(++counter),
    });
    expect(toHex(s.tk)).toBe('01'.repeat(16) + '02'.repeat(16));
    const f = parseSessionBlob(s.sessionBlob);
    expect(toHex(f.nonce)).toBe('03'.repeat(16));
    expect(toHex(f.wrapIv)).toBe('04'.repeat(16));
    s.wipe();
    expect(() => s.tek).toThrow(/wiped/);
  });

  it('rejects an unusable PDH, policy or random source with the same SevError codes as create', async () => {
    const base = () => parseSevCert(pdhKeyPair().cert);
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        expect(e).toBeInstanceOf(SevError);
        return (e as SevError).code;
      }
      return 'no error';
    };
    const usage = base();
    usage.usage = Usage.PEK;
    const algo = base();
    algo.algo = Algo.ECDSA_SHA256;
    const curve = base();
    if (curve.pubkey.kind === 'ecc') curve.pubkey.curve = Curve.P256;
    const offCurve = base();
    if (offCurve.pubkey.kind === 'ecc') offCurve.pubkey.qy[0]! ^= 1;
    const cases: Array<[string, Parameters<typeof LaunchSession.create>[0]]> = [
      ['bad-usage', { pdh: usage, policy: 1 }],
      ['bad-algorithm', { pdh: algo, policy: 1 }],
      ['bad-curve', { pdh: curve, policy: 1 }],
      ['bad-key', { pdh: offCurve, policy: 1 }],
      ['bad-length', { pdh: new Uint8Array(100), policy: 1 }],
      ['bad-policy', { pdh: pdhKeyPair().cert, policy: 0x40 }],
      ['bad-length', { pdh: pdhKeyPair().cert, policy: 1, random: () => new Uint8Array(3) }],
    ];
    for (const [want, opts] of cases) {
      expect(await code(LaunchSession.createAsync(opts))).toBe(want);
      expect(await code(Promise.resolve().then(() => LaunchSession.create(opts)))).toBe(want);
    }
  });
});
