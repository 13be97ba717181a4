/**
 * LAUNCH_SECRET packaging (docs/protocol.md §7): the EFI secret table the guest's OVMF exposes, and the
 * encrypted packet (52-byte header + ciphertext) the firmware decrypts into the guest.
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { SevError } from './errors';
import { concat, guidBytesLe, guidFromBytesLe, readU32le, u32le, writeU32le } from './bytes';
import { measurementHasPrefix } from './measurement';

export const SECRET_TABLE_GUID = '1e74f542-71dd-4d66-963e-ef4287ff173b';
/** The disk passphrase grub's efisecret/cryptodisk reads (libvirt alias `luks-key`). */
export const LUKS_PASSPHRASE_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';
export const SECRET_HEADER_SIZE = 52;
/** Firmware SEV_SCRATCH_BUF_LEN: the largest LAUNCH_SECRET guest length. */
export const LAUNCH_SECRET_MAX_LENGTH = 0x5000;
/** GUID + u32 length, for the table header and for each entry. */
const RECORD_HEADER = 20;
/** SEV_CHANNEL_CTX_SECRET in the firmware. */
const SECRET_CONTEXT = 0x01;

export interface SecretEntry {
  /** Lower-case canonical GUID string. */
  guid: string;
  data: Uint8Array;
}

/**
 * 'aligned': zero padding to the next multiple of 16, none if already aligned (sevctl since PR #114).
 * 'libvirt9': `16 - len % 16`, i.e. 16 extra bytes when already aligned (libvirt 9.0 virt-qemu-sev-validate).
 */
export type SecretPadding = 'aligned' | 'libvirt9';

function normalizeGuid(guid: string): string {
  if (
    typeof guid !== 'string' ||
    !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(guid)
  ) {
    throw new SevError(
      'bad-format',
      `secret GUID must look like 736869e5-84f0-4973-92ec-06879ce3da0b, got '${String(guid)}'`,
    );
  }
  return guid.toLowerCase();
}

/** The EFI secret table: header GUID, u32 total length, then (GUID, u32 length, data) entries. */
export class SecretTable {
  readonly #entries: SecretEntry[] = [];

  get entries(): readonly SecretEntry[] {
    return this.#entries;
  }

  /** Adds an entry with raw data (stored as given, no terminator). Each GUID may appear once. */
  add(guid: string, data: Uint8Array): this {
    const g = normalizeGuid(guid);
    if (!(data instanceof Uint8Array)) throw new SevError('bad-format', `secret ${g}: data must be bytes`);
    if (this.#entries.some((e) => e.guid === g)) {
      throw new SevError('bad-format', `secret table already has an entry for GUID ${g}`);
    }
    this.#entries.push({ guid: g, data: Uint8Array.from(data) });
    return this;
  }

  /**
   * Adds the disk passphrase for grub's efisecret: UTF-8 bytes followed by one NUL, because grub
   * refuses an entry whose last byte is not 0 ("the passphrase must be a zero terminated string
   * because the password routines call grub_strlen()", grub-core/disk/efi/efisecret.c).
   */
  addLuksPassphrase(pass: string): this {
    if (typeof pass !== 'string' || pass.length === 0) {
      throw new SevError('bad-format', 'the LUKS passphrase is empty');
    }
    if (pass.includes('\0')) {
      throw new SevError(
        'bad-format',
        'the LUKS passphrase contains a NUL character, which grub would cut it at',
      );
    }
    return this.add(LUKS_PASSPHRASE_GUID, concat(new TextEncoder().encode(pass), Uint8Array.of(0)));
  }

  /** The table length without padding (the value of its length field). */
  get unpaddedLength(): number {
    return this.#entries.reduce((n, e) => n + RECORD_HEADER + e.data.length, RECORD_HEADER);
  }

  /** Serializes the table with zero padding to a multiple of 16 (see SecretPadding). */
  build(opts: { padding?: SecretPadding } = {}): Uint8Array {
    const padding = opts.padding ?? 'aligned';
    if (padding !== 'aligned' && padding !== 'libvirt9') {
      throw new SevError('bad-format', `unknown secret table padding '${String(padding)}'`);
    }
    if (this.#entries.length === 0) throw new SevError('bad-format', 'the secret table has no entries');
    const len = this.unpaddedLength;
    if (len > 0xffffffff) throw new SevError('bad-length', 'the secret table is too large');
    const pad = padding === 'aligned' ? (16 - (len % 16)) % 16 : 16 - (len % 16);
    const out = new Uint8Array(len + pad);
    out.set(guidBytesLe(SECRET_TABLE_GUID), 0);
    writeU32le(out, 16, len);
    let off = RECORD_HEADER;
    for (const e of this.#entries) {
      out.set(guidBytesLe(e.guid), off);
      writeU32le(out, off + 16, RECORD_HEADER + e.data.length);
      out.set(e.data, off + RECORD_HEADER);
      off += RECORD_HEADER + e.data.length;
    }
    return out;
  }

  /**
   * Parses a (decrypted) secret table. Bytes after the table's length must be zero padding; entries
   * must exactly fill the declared length.
   */
  static parse(bytes: Uint8Array): SecretTable {
    if (!(bytes instanceof Uint8Array)) throw new SevError('bad-format', 'secret table: expected bytes');
    if (bytes.length < RECORD_HEADER) {
      throw new SevError(
        'bad-length',
        `secret table: ${bytes.length} bytes is shorter than its 20-byte header`,
      );
    }
    const tableGuid = guidFromBytesLe(bytes.subarray(0, 16));
    if (tableGuid !== SECRET_TABLE_GUID) {
      throw new SevError(
        'bad-format',
        `secret table: header GUID is ${tableGuid}, expected ${SECRET_TABLE_GUID}`,
      );
    }
    const total = readU32le(bytes, 16);
    if (total < RECORD_HEADER || total > bytes.length) {
      throw new SevError(
        'bad-length',
        `secret table: length field ${total} is outside ${RECORD_HEADER}..${bytes.length} (the bytes given)`,
      );
    }
    for (let i = total; i < bytes.length; i++) {
      if (bytes[i] !== 0)
        throw new SevError('bad-format', `secret table: non-zero byte at offset ${i} in the padding`);
    }
    const table = new SecretTable();
    let off = RECORD_HEADER;
    while (off < total) {
      if (total - off < RECORD_HEADER) {
        throw new SevError(
          'bad-format',
          `secret table: ${total - off} stray bytes at offset ${off}, too few for an entry`,
        );
      }
      const guid = guidFromBytesLe(bytes.subarray(off, off + 16));
      const len = readU32le(bytes, off + 16);
      if (len < RECORD_HEADER || len > total - off) {
        throw new SevError(
          'bad-length',
          `secret table: entry ${guid} at offset ${off} has length ${len}, outside ${RECORD_HEADER}..${total - off}`,
        );
      }
      table.add(guid, bytes.slice(off + RECORD_HEADER, off + len));
      off += len;
    }
    if (table.#entries.length === 0) throw new SevError('bad-format', 'secret table: no entries');
    return table;
  }
}

export interface PackageSecretParams {
  tek: Uint8Array;
  tik: Uint8Array;
  /** The padded plaintext (normally SecretTable.build()). */
  table: Uint8Array;
  /** The 32-byte measure from LAUNCH_MEASURE (not the mnonce). */
  measurement: Uint8Array;
  apiMajor: number;
  apiMinor: number;
  /** The initial AES-CTR counter block; random if not given. */
  iv?: Uint8Array;
}

export interface SecretPacket {
  /** flags(u32 LE, 0) || IV(16) || MAC(32). */
  header: Uint8Array;
  /** The ciphertext. */
  payload: Uint8Array;
}

function needLen(what: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new SevError(
      'bad-length',
      `${what} must be ${len} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`,
    );
  }
}

/** Checks a LAUNCH_SECRET length against the firmware's rules (16-aligned, non-zero, <= 0x5000). */
export function checkSecretLength(n: number): void {
  if (n === 0) throw new SevError('bad-length', 'the secret is empty; LAUNCH_SECRET needs at least 16 bytes');
  if (n % 16 !== 0) {
    throw new SevError(
      'bad-length',
      `the secret is ${n} bytes; LAUNCH_SECRET needs a multiple of 16 (pad the table)`,
    );
  }
  if (n > LAUNCH_SECRET_MAX_LENGTH) {
    throw new SevError(
      'bad-length',
      `the secret is ${n} bytes; the firmware accepts at most ${LAUNCH_SECRET_MAX_LENGTH} (0x5000) bytes`,
    );
  }
}

/**
 * Encrypts a secret for LAUNCH_SECRET: C = AES-128-CTR(TEK, IV)(table); MAC = HMAC-SHA256(TIK, 0x01 ||
 * u32le(flags) || IV || u32le(n) || u32le(n) || C || measure), without measure for firmware API < 0.17.
 */
export function packageSecret(p: PackageSecretParams): SecretPacket {
  needLen('TEK', p.tek, 16);
  needLen('TIK', p.tik, 16);
  needLen('measurement (the 32-byte measure, not the 48-byte blob)', p.measurement, 32);
  if (!(p.table instanceof Uint8Array)) throw new SevError('bad-format', 'secret table must be bytes');
  checkSecretLength(p.table.length);
  for (const [what, v] of [
    ['API major', p.apiMajor],
    ['API minor', p.apiMinor],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) {
      throw new SevError('bad-format', `${what} must be an integer in 0..255, got ${String(v)}`);
    }
  }
  const iv = p.iv === undefined ? new Uint8Array(randomBytes(16)) : p.iv;
  needLen('IV', iv, 16);
  const flags = u32le(0);
  const cipher = createCipheriv('aes-128-ctr', p.tek, iv);
  const payload = new Uint8Array(Buffer.concat([cipher.update(p.table), cipher.final()]));
  const n = u32le(p.table.length);
  const h = createHmac('sha256', p.tik).update(Uint8Array.of(SECRET_CONTEXT)).update(flags).update(iv);
  h.update(n).update(n).update(payload);
  if (measurementHasPrefix(p.apiMajor, p.apiMinor)) h.update(p.measurement);
  const header = concat(flags, iv, new Uint8Array(h.digest()));
  return { header, payload };
}
