/** Byte helpers shared by the protocol core. SEV firmware structures are little-endian (docs/protocol.md §10). */

export function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

export function readU32le(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

export function readU16le(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(off, true);
}

export function writeU32le(b: Uint8Array, off: number, n: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(off, n >>> 0, true);
}

export function writeU16le(b: Uint8Array, off: number, n: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint16(off, n & 0xffff, true);
}

export function writeU64le(b: Uint8Array, off: number, n: bigint): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(off, n, true);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A reversed copy: SEV stores big numbers little-endian, standard libraries want big-endian. */
export function reversed(b: Uint8Array): Uint8Array {
  return Uint8Array.from(b).reverse();
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  const clean = s.trim();
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) throw new TypeError('not a hex string');
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Strict standard base64 (padding required, no URL alphabet, no whitespace inside). */
export function fromBase64(s: string): Uint8Array {
  const clean = s.trim();
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(clean)) {
    throw new TypeError('not standard base64');
  }
  return new Uint8Array(Buffer.from(clean, 'base64'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A GUID in the EFI mixed-endian binary layout (Python's `uuid.UUID(s).bytes_le`): the first three
 * fields little-endian, the last two as written.
 */
export function guidBytesLe(guid: string): Uint8Array {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a GUID: ${guid}`);
  const b = fromHex(hex);
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

/** The inverse of guidBytesLe: 16 bytes to the canonical lower-case string. */
export function guidFromBytesLe(b: Uint8Array): string {
  if (b.length !== 16) throw new TypeError('a GUID is 16 bytes');
  const r = Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
  const h = toHex(r);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Overwrites a buffer holding key material; used when a connection's TEK/TIK are released or expire. */
export function wipe(b: Uint8Array | undefined): void {
  if (b) b.fill(0);
}
