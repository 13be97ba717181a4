/**
 * Launch session creation by the guest owner (docs/protocol.md §4): a fresh P-384 GODH key, ECDH with the
 * platform's PDH, the KDF chain master -> KEK/KIK, the wrapped TEK/TIK and the 128-byte session blob
 * that LAUNCH_START consumes.
 */
import { createCipheriv, createECDH, createHmac, randomBytes, webcrypto } from 'node:crypto';
import { SevError } from './errors';
import { concat, toBase64, u32le, wipe } from './bytes';
import {
  Algo,
  Curve,
  P384_BYTES,
  Usage,
  algoName,
  eccPointBigEndian,
  eccPublicKeyObject,
  newEccCert,
  parseSevCert,
  serializeSevCert,
  usageName,
  type SevCertificate,
} from './cert';
import { sevKdf } from './kdf';
import { decodePolicy } from './policy';

export const SESSION_BLOB_SIZE = 128;
const KEY_BYTES = 16;

export interface SessionKeys {
  master: Uint8Array;
  kek: Uint8Array;
  kik: Uint8Array;
}

/** master = KDF(Z, "sev-master-secret", nonce); KEK/KIK = KDF(master, "sev-kek"/"sev-kik", ""). */
export function deriveSessionKeys(z: Uint8Array, nonce: Uint8Array): SessionKeys {
  if (nonce.length !== 16)
    throw new SevError('bad-length', `session nonce must be 16 bytes, got ${nonce.length}`);
  const master = sevKdf(z, 'sev-master-secret', nonce, 128);
  const empty = new Uint8Array(0);
  return { master, kek: sevKdf(master, 'sev-kek', empty, 128), kik: sevKdf(master, 'sev-kik', empty, 128) };
}

function need(what: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new SevError(
      'bad-length',
      `${what} must be ${len} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`,
    );
  }
}

function aes128Ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-128-ctr', key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/**
 * The 128-byte session blob nonce || wrap_tk || wrap_iv || wrap_mac || policy_mac, from a given shared
 * secret Z and all random inputs (pure: used for the known-answer vectors and by LaunchSession).
 */
export function buildSessionBlob(p: {
  z: Uint8Array;
  nonce: Uint8Array;
  wrapIv: Uint8Array;
  tek: Uint8Array;
  tik: Uint8Array;
  policy: number;
}): Uint8Array {
  need('nonce', p.nonce, 16);
  need('wrap IV', p.wrapIv, 16);
  need('TEK', p.tek, KEY_BYTES);
  need('TIK', p.tik, KEY_BYTES);
  decodePolicy(p.policy);
  const keys = deriveSessionKeys(p.z, p.nonce);
  try {
    const wrapTk = aes128Ctr(keys.kek, p.wrapIv, concat(p.tek, p.tik));
    const wrapMac = hmacSha256(keys.kik, wrapTk);
    const policyMac = hmacSha256(p.tik, u32le(p.policy));
    return concat(p.nonce, wrapTk, p.wrapIv, wrapMac, policyMac);
  } finally {
    wipe(keys.master);
    wipe(keys.kek);
    wipe(keys.kik);
  }
}

export interface SessionBlobFields {
  nonce: Uint8Array;
  wrapTk: Uint8Array;
  wrapIv: Uint8Array;
  wrapMac: Uint8Array;
  policyMac: Uint8Array;
}

/** Splits a 128-byte session blob into its fields (docs/protocol.md §4 step 6). */
export function parseSessionBlob(b: Uint8Array): SessionBlobFields {
  need('session blob', b, SESSION_BLOB_SIZE);
  return {
    nonce: b.slice(0x00, 0x10),
    wrapTk: b.slice(0x10, 0x30),
    wrapIv: b.slice(0x30, 0x40),
    wrapMac: b.slice(0x40, 0x60),
    policyMac: b.slice(0x60, 0x80),
  };
}

function checkedPdhPoint(pdh: Uint8Array | SevCertificate, validatePoint: boolean): Uint8Array {
  const cert = pdh instanceof Uint8Array ? parseSevCert(pdh, 'PDH') : pdh;
  if (cert.usage !== Usage.PDH) {
    throw new SevError('bad-usage', `PDH: key usage must be PDH (0x1003), got ${usageName(cert.usage)}`);
  }
  if (cert.algo !== Algo.ECDH_SHA256) {
    throw new SevError(
      'bad-algorithm',
      `PDH: algorithm must be ECDH_SHA256 (0x003), got ${algoName(cert.algo)}`,
    );
  }
  if (cert.pubkey.kind !== 'ecc' || cert.pubkey.curve !== Curve.P384) {
    const got = cert.pubkey.kind === 'ecc' ? `curve ${cert.pubkey.curve}` : 'an RSA key';
    throw new SevError('bad-curve', `PDH: key must be on P-384 (curve 2), got ${got}`);
  }
  if (validatePoint) eccPublicKeyObject(cert); // throws bad-key when the point is not on P-384
  const { x, y } = eccPointBigEndian(cert.pubkey);
  return concat(Uint8Array.of(4), x, y);
}

/**
 * Checks that a certificate can serve as the platform DH key: usage PDH, ECDH_SHA256, P-384, a point on
 * the curve. Returns the uncompressed big-endian point 0x04 || x || y.
 */
export function pdhPublicPoint(pdh: Uint8Array | SevCertificate): Uint8Array {
  return checkedPdhPoint(pdh, true);
}

export interface LaunchSessionOptions {
  /** The platform's PDH certificate (2084 bytes or parsed). Its chain must have been verified already. */
  pdh: Uint8Array | SevCertificate;
  policy: number;
  /** Source of TEK, TIK, nonce and wrap IV; defaults to node:crypto randomBytes. */
  random?: (n: number) => Uint8Array;
}

interface SessionInputs {
  policy: number;
  pdhPoint: Uint8Array;
  tek: Uint8Array;
  tik: Uint8Array;
  nonce: Uint8Array;
  wrapIv: Uint8Array;
}

/** Checks the policy and PDH and draws TEK, TIK, nonce and wrap IV (in that order). */
function sessionInputs(opts: LaunchSessionOptions): SessionInputs {
  decodePolicy(opts.policy);
  // Both ECDH paths check the point is on the curve (OpenSSL's ECDH; WebCrypto's raw import), so no
  // separate (slower) key object here.
  const pdhPoint = checkedPdhPoint(opts.pdh, false);
  const random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const take = (what: string, n: number): Uint8Array => {
    const b = random(n);
    need(`random ${what}`, b, n);
    return Uint8Array.from(b);
  };
  const tek = take('TEK', KEY_BYTES);
  const tik = take('TIK', KEY_BYTES);
  const nonce = take('nonce', 16);
  const wrapIv = take('wrap IV', 16);
  return { policy: opts.policy, pdhPoint, tek, tik, nonce, wrapIv };
}

const subtle = webcrypto.subtle;
const ECDH_P384 = { name: 'ECDH', namedCurve: 'P-384' } as const;

async function importPdhKey(pdhPoint: Uint8Array): Promise<webcrypto.CryptoKey> {
  try {
    return await subtle.importKey('raw', Uint8Array.from(pdhPoint), ECDH_P384, false, []);
  } catch {
    throw new SevError('bad-key', 'PDH public key is not a valid P-384 point');
  }
}

/**
 * Z of the launch (docs/protocol.md §4): the 48-byte big-endian x coordinate of ECDH(owner private, PDH), by
 * WebCrypto deriveBits, which runs on the libuv thread pool.
 */
export async function ecdhSecretAsync(
  ownerPrivate: webcrypto.CryptoKey,
  pdhPublic: webcrypto.CryptoKey,
): Promise<Uint8Array> {
  try {
    return new Uint8Array(
      await subtle.deriveBits({ name: 'ECDH', public: pdhPublic }, ownerPrivate, P384_BYTES * 8),
    );
  } catch {
    throw new SevError('bad-key', 'ECDH with the PDH public key failed');
  }
}

/**
 * One guest launch: a fresh owner DH key, fresh TEK/TIK, nonce and wrap IV. Hand `ownerCert` and
 * `sessionBlob` to LAUNCH_START; keep `tek`/`tik` to verify the measurement and package the secret,
 * then `wipe()`.
 */
export class LaunchSession {
  readonly sessionBlob: Uint8Array;
  /** The 2084-byte GODH certificate (usage PDH, ECDH_SHA256, api 0.0, empty signature slots). */
  readonly ownerCert: Uint8Array;
  readonly policy: number;
  #tek: Uint8Array;
  #tik: Uint8Array;
  #wiped = false;

  private constructor(
    sessionBlob: Uint8Array,
    ownerCert: Uint8Array,
    policy: number,
    tek: Uint8Array,
    tik: Uint8Array,
  ) {
    this.sessionBlob = sessionBlob;
    this.ownerCert = ownerCert;
    this.policy = policy;
    this.#tek = tek;
    this.#tik = tik;
  }

  /** Creates a fresh session for the platform whose PDH is given. */
  static create(opts: LaunchSessionOptions): LaunchSession {
    const inputs = sessionInputs(opts);
    // A fresh owner key per session; the private half never leaves this function.
    const ecdh = createECDH('secp384r1');
    const ownerPoint = new Uint8Array(ecdh.generateKeys());
    let z: Uint8Array;
    try {
      z = new Uint8Array(ecdh.computeSecret(inputs.pdhPoint)); // 48-byte big-endian x coordinate
    } catch {
      throw new SevError('bad-key', 'PDH public key is not a valid P-384 point');
    }
    return LaunchSession.#assemble(inputs, z, ownerPoint);
  }

  /**
   * As create(), with the owner key generation and the ECDH on the libuv thread pool (WebCrypto jobs),
   * so a busy service's event loop only does the cheap KDF and wrap. Same session format, same errors.
   */
  static async createAsync(opts: LaunchSessionOptions): Promise<LaunchSession> {
    const inputs = sessionInputs(opts);
    const [owner, pdhKey] = await Promise.all([
      subtle.generateKey(ECDH_P384, false, ['deriveBits']),
      importPdhKey(inputs.pdhPoint),
    ]);
    const ownerPoint = new Uint8Array(await subtle.exportKey('raw', owner.publicKey));
    const z = await ecdhSecretAsync(owner.privateKey, pdhKey);
    return LaunchSession.#assemble(inputs, z, ownerPoint);
  }

  /** The blob and owner cert from Z and the owner's uncompressed point; wipes Z. */
  static #assemble(inputs: SessionInputs, z: Uint8Array, ownerPoint: Uint8Array): LaunchSession {
    const { tek, tik, nonce, wrapIv, policy } = inputs;
    if (z.length !== P384_BYTES) throw new SevError('bad-key', 'ECDH produced an unexpected secret length');
    try {
      const blob = buildSessionBlob({ z, nonce, wrapIv, tek, tik, policy });
      const ownerCert = serializeSevCert(
        newEccCert({
          usage: Usage.PDH,
          algo: Algo.ECDH_SHA256,
          x: ownerPoint.subarray(1, 1 + P384_BYTES),
          y: ownerPoint.subarray(1 + P384_BYTES),
        }),
      );
      return new LaunchSession(blob, ownerCert, policy, tek, tik);
    } finally {
      wipe(z);
    }
  }

  /** The transport encoding QEMU's dh-cert-file and libvirt's <dhCert> expect. */
  get ownerCertBase64(): string {
    return toBase64(this.ownerCert);
  }

  /** The transport encoding QEMU's session-file and libvirt's <session> expect. */
  get sessionBlobBase64(): string {
    return toBase64(this.sessionBlob);
  }

  get tek(): Uint8Array {
    this.#alive();
    return this.#tek;
  }

  get tik(): Uint8Array {
    this.#alive();
    return this.#tik;
  }

  /** TEK || TIK, the 32-byte file libvirt's validator takes as --tk. */
  get tk(): Uint8Array {
    this.#alive();
    return concat(this.#tek, this.#tik);
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** Zeroes TEK and TIK; any later use of them throws. */
  wipe(): void {
    wipe(this.#tek);
    wipe(this.#tik);
    this.#wiped = true;
  }

  #alive(): void {
    if (this.#wiped) throw new SevError('bad-key', 'the session keys (TEK/TIK) were wiped');
  }
}
