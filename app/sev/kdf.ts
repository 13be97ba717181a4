/**
 * The SEV key derivation function (docs/protocol.md §4 step 4): NIST SP 800-108 in counter mode with
 * HMAC-SHA256 as PRF. Unlike most SP 800-108 users, SEV encodes the counter and the output length as
 * little-endian u32 (ASPFW nist_kdf.c, sev-tool kdf, virtee Key::derive).
 */
import { createHmac } from 'node:crypto';
import { SevError } from './errors';
import { u32le } from './bytes';

const HMAC_SHA256_BYTES = 32;
const NUL = Uint8Array.of(0);

/** SP 800-108 counter-mode KDF: K(i) = HMAC(key, u32le(i) || label || 0x00 || context || u32le(bits)). */
export function sevKdf(key: Uint8Array, label: string, context: Uint8Array, bits: number): Uint8Array {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > 0xffffffff) {
    throw new SevError('bad-length', `KDF output length must be a positive multiple of 8 bits, got ${bits}`);
  }
  if (key.length === 0) throw new SevError('bad-key', 'KDF input key is empty');
  const labelBytes = new TextEncoder().encode(label);
  const lengthField = u32le(bits);
  const outBytes = bits / 8;
  const out = new Uint8Array(Math.ceil(outBytes / HMAC_SHA256_BYTES) * HMAC_SHA256_BYTES);
  for (let i = 1, off = 0; off < outBytes; i++, off += HMAC_SHA256_BYTES) {
    const block = createHmac('sha256', key)
      .update(u32le(i))
      .update(labelBytes)
      .update(NUL)
      .update(context)
      .update(lengthField)
      .digest();
    out.set(block, off);
  }
  return out.slice(0, outBytes);
}
