/**
 * The firmware-side cryptography of the simulated SEV platform, written from the protocol document
 * (§4 establish_channel, §5 LAUNCH_MEASURE, §7 LAUNCH_SECRET, §8 policy) and deliberately independent
 * of the owner-side code in app/sev/, so that round-trip tests check one against the other.
 * Pure functions; the stateful commands are in platform.ts.
 */
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { concat, guidFromBytesLe, readU32le, u32le } from '../sev/bytes';
import { SimFirmwareError } from './errors';

export const SESSION_SIZE = 128;
export const PACKET_HEADER_SIZE = 52;
export const MEASURE_SIZE = 32;
export const MNONCE_SIZE = 16;
/** SEV_SCRATCH_BUF_LEN: the largest LAUNCH_SECRET payload the firmware accepts (docs/protocol.md §7). */
export const MAX_SECRET_LENGTH = 0x5000;
/** Policy bits 6..15 are reserved and must be zero (SEV_GUEST_POLICY_RESERVED_MASK, docs/protocol.md §8). */
export const POLICY_RESERVED_MASK = 0xffc0;
export const POLICY_ES = 0x4;
export const SECRET_FLAG_COMPRESSED = 0x1;

const CTX_SECRET = 0x01;
const CTX_MEASURE = 0x04;
export const SECRET_TABLE_GUID = '1e74f542-71dd-4d66-963e-ef4287ff173b';

/** HMAC-SHA256 over the concatenation of parts. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** AES-128-CTR with the 16-byte IV as the initial counter block (encryption and decryption are the same). */
export function aes128Ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-128-ctr', key, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** Constant-time equality of two MACs. */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * NIST SP 800-108 counter-mode KDF with HMAC-SHA256 as the firmware's nist_kdf.c does it (docs/protocol.md §4.4):
 * K(i) = HMAC(key, u32le(i) || label || 0x00 || context || u32le(L)), counter and L little-endian.
 */
export function firmwareKdf(
  keyIn: Uint8Array,
  label: string,
  context: Uint8Array,
  lengthBits = 128,
): Uint8Array {
  const outLen = lengthBits / 8;
  const labelBytes = new TextEncoder().encode(label);
  const blocks: Uint8Array[] = [];
  for (let i = 1; blocks.length * 32 < outLen; i++) {
    blocks.push(hmacSha256(keyIn, u32le(i), labelBytes, Uint8Array.of(0), context, u32le(lengthBits)));
  }
  return concat(...blocks).slice(0, outLen);
}

export interface SessionFields {
  nonce: Uint8Array;
  wrapTk: Uint8Array;
  wrapIv: Uint8Array;
  wrapMac: Uint8Array;
  policyMac: Uint8Array;
}

/** Splits the 128-byte LAUNCH_START session blob (docs/protocol.md §4.6). */
export function splitSession(session: Uint8Array): SessionFields {
  if (session.length !== SESSION_SIZE) {
    throw new SimFirmwareError(
      'INVALID_LENGTH',
      `session must be ${SESSION_SIZE} bytes, got ${session.length}`,
    );
  }
  return {
    nonce: session.slice(0x00, 0x10),
    wrapTk: session.slice(0x10, 0x30),
    wrapIv: session.slice(0x30, 0x40),
    wrapMac: session.slice(0x40, 0x60),
    policyMac: session.slice(0x60, 0x80),
  };
}

/**
 * The firmware's derive_master_secret + establish_channel: from the ECDH shared secret Z and the
 * session blob, re-derive master/KEK/KIK, verify wrap_mac and unwrap TEK || TIK. Z is taken as given
 * (48 bytes in a real launch; the docs/protocol.md §9 vector uses 16 zero bytes).
 */
export function unwrapSession(z: Uint8Array, session: Uint8Array): { tek: Uint8Array; tik: Uint8Array } {
  const s = splitSession(session);
  const master = firmwareKdf(z, 'sev-master-secret', s.nonce);
  const kek = firmwareKdf(master, 'sev-kek', new Uint8Array(0));
  const kik = firmwareKdf(master, 'sev-kik', new Uint8Array(0));
  if (!macEqual(hmacSha256(kik, s.wrapTk), s.wrapMac)) {
    throw new SimFirmwareError('BAD_MEASUREMENT', 'session wrap_mac does not verify');
  }
  const keys = aes128Ctr(kek, s.wrapIv, s.wrapTk);
  master.fill(0);
  kek.fill(0);
  kik.fill(0);
  return { tek: keys.slice(0, 16), tik: keys.slice(16, 32) };
}

/** The session's policy_mac = HMAC-SHA256(TIK, u32le(policy)) must match (checked with the unwrapped TIK). */
export function verifyPolicyMac(tik: Uint8Array, policy: number, policyMac: Uint8Array): void {
  if (!macEqual(hmacSha256(tik, u32le(policy)), policyMac)) {
    throw new SimFirmwareError('BAD_MEASUREMENT', 'session policy_mac does not verify for this policy');
  }
}

/** (major, minor) >= (wantMajor, wantMinor). */
export function apiAtLeast(major: number, minor: number, wantMajor: number, wantMinor: number): boolean {
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

/** The firmware's policy checks at LAUNCH_START (docs/protocol.md §8): reserved bits zero, minimum API met. */
export function checkPolicy(policy: number, apiMajor: number, apiMinor: number): void {
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) {
    throw new SimFirmwareError('INVALID_PARAM', `policy must be a u32, got ${policy}`);
  }
  if ((policy & POLICY_RESERVED_MASK) !== 0) {
    throw new SimFirmwareError('POLICY_FAILURE', `policy 0x${policy.toString(16)} sets reserved bits 6..15`);
  }
  const minMajor = (policy >>> 16) & 0xff;
  const minMinor = (policy >>> 24) & 0xff;
  if (!apiAtLeast(apiMajor, apiMinor, minMajor, minMinor)) {
    throw new SimFirmwareError(
      'POLICY_FAILURE',
      `policy requires firmware API ${minMajor}.${minMinor}, platform has ${apiMajor}.${apiMinor}`,
    );
  }
}

export interface MeasureInputs {
  tik: Uint8Array;
  apiMajor: number;
  apiMinor: number;
  build: number;
  policy: number;
  launchDigest: Uint8Array;
  mnonce: Uint8Array;
}

/**
 * LAUNCH_MEASURE's HMAC (docs/protocol.md §5): HMAC(TIK, 0x04 || major || minor || build || u32le(policy) || LD ||
 * mnonce); firmware API < 0.17 omits the 0x04||major||minor||build prefix.
 */
export function computeLaunchMeasure(m: MeasureInputs): Uint8Array {
  const tail = concat(u32le(m.policy), m.launchDigest, m.mnonce);
  if (!apiAtLeast(m.apiMajor, m.apiMinor, 0, 17)) return hmacSha256(m.tik, tail);
  return hmacSha256(m.tik, Uint8Array.of(CTX_MEASURE, m.apiMajor, m.apiMinor, m.build), tail);
}

export interface SecretPacketInputs {
  tek: Uint8Array;
  tik: Uint8Array;
  /** The 32-byte measurement HMAC; undefined for firmware API < 0.17 (not covered by the MAC). */
  measure: Uint8Array | undefined;
  header: Uint8Array;
  payload: Uint8Array;
}

/**
 * The firmware's LAUNCH_SECRET checks and sev_channel_extract (docs/protocol.md §7): header size, flags, length
 * rules, MAC (encrypt-then-MAC, over the ciphertext), then AES-128-CTR decryption with the TEK.
 */
export function openSecretPacket(p: SecretPacketInputs): Uint8Array {
  if (p.header.length !== PACKET_HEADER_SIZE) {
    throw new SimFirmwareError(
      'INVALID_LENGTH',
      `packet header must be ${PACKET_HEADER_SIZE} bytes, got ${p.header.length}`,
    );
  }
  const flags = readU32le(p.header, 0);
  if ((flags & SECRET_FLAG_COMPRESSED) !== 0) {
    throw new SimFirmwareError('UNSUPPORTED', 'compressed secrets are not supported');
  }
  if (flags !== 0) {
    throw new SimFirmwareError('INVALID_PARAM', `unknown packet header flags 0x${flags.toString(16)}`);
  }
  const n = p.payload.length;
  if (n === 0 || n % 16 !== 0) {
    throw new SimFirmwareError('INVALID_LENGTH', `secret length must be a non-zero multiple of 16, got ${n}`);
  }
  if (n > MAX_SECRET_LENGTH) {
    throw new SimFirmwareError('INVALID_LENGTH', `secret length ${n} exceeds ${MAX_SECRET_LENGTH}`);
  }
  const iv = p.header.slice(4, 20);
  const mac = p.header.slice(20, 52);
  const expected = hmacSha256(
    p.tik,
    Uint8Array.of(CTX_SECRET),
    u32le(flags),
    iv,
    u32le(n), // GUEST_LENGTH
    u32le(n), // TRANS_LENGTH: equal to GUEST_LENGTH, as the firmware requires
    p.payload,
    p.measure ?? new Uint8Array(0),
  );
  if (!macEqual(expected, mac)) {
    throw new SimFirmwareError('BAD_MEASUREMENT', 'secret packet MAC does not verify');
  }
  return aes128Ctr(p.tek, iv, p.payload);
}

export interface SecretTableEntry {
  guid: string;
  data: Uint8Array;
}

/**
 * Parses the EFI secret table (docs/protocol.md §7) as the guest would: table GUID, u32 total length (excluding
 * padding), entries of GUID || u32 length (incl. its 20-byte header) || data; padding must be zero.
 */
export function parseEfiSecretTable(plain: Uint8Array): SecretTableEntry[] {
  const bad = (why: string): never => {
    throw new SimFirmwareError('GUEST_SECRET_TABLE_INVALID', why);
  };
  if (plain.length < 20) bad(`secret table is ${plain.length} bytes, shorter than its 20-byte header`);
  if (guidFromBytesLe(plain.subarray(0, 16)) !== SECRET_TABLE_GUID) bad('secret table GUID is wrong');
  const total = readU32le(plain, 16);
  if (total < 20 || total > plain.length) {
    bad(`secret table length ${total} is outside [20, ${plain.length}]`);
  }
  const entries: SecretTableEntry[] = [];
  let off = 20;
  while (off < total) {
    if (total - off < 20) bad(`secret table entry at ${off} is truncated`);
    const len = readU32le(plain, off + 16);
    if (len < 20 || len > total - off) bad(`secret table entry at ${off} has bad length ${len}`);
    entries.push({
      guid: guidFromBytesLe(plain.subarray(off, off + 16)),
      data: plain.slice(off + 20, off + len),
    });
    off += len;
  }
  for (let i = total; i < plain.length; i++) {
    if (plain[i] !== 0) bad(`secret table padding byte at ${i} is not zero`);
  }
  return entries;
}
