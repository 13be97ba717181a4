/**
 * Row encryption for the shared database: AES-256-GCM under a key derived from the service key with
 * HKDF-SHA256, and the row's place as associated data (table | row id | state | key id), so a ciphertext
 * copied into another row, another table or another state does not open. Sealed layout:
 * version (1 byte, 1) || key id (8) || IV (12, random) || ciphertext || tag (16).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { DomainError } from '../../../app/errors';
import type { ServiceKey } from './service-key';

const VERSION = 1;
const HEADER = 1 + 8 + 12;
const TAG = 16;

/** Where a sealed value lives; all of it is authenticated. */
export interface RowPlace {
  table: string;
  id: string;
  state: string;
}

function aad(place: RowPlace, keyId: Buffer): Buffer {
  for (const part of [place.table, place.id, place.state]) {
    // The separator cannot appear in a part: the encoding is unambiguous.
    if (part.includes('|')) throw new DomainError('internal', `row place part contains '|': ${part}`);
  }
  return Buffer.from(`sev-attest row v1|${place.table}|${place.id}|${place.state}|${keyId.toString('hex')}`);
}

/** Seals and opens row values under the service keys (the first seals, any opens). */
export class RowCipher {
  private readonly keys: Array<{ id: Buffer; aes: Buffer }>;

  constructor(serviceKeys: readonly ServiceKey[]) {
    if (serviceKeys.length === 0) throw new DomainError('bad-arguments', 'no service key');
    this.keys = serviceKeys.map((k) => ({
      id: k.id,
      aes: Buffer.from(hkdfSync('sha256', k.bytes, 'sev-attest row encryption', 'aes-256-gcm v1', 32)),
    }));
  }

  /** The id (hex) of the key new values are sealed under. */
  get sealingKeyId(): string {
    return this.keys[0]!.id.toString('hex');
  }

  seal(place: RowPlace, plaintext: Uint8Array): Buffer {
    const k = this.keys[0]!;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k.aes, iv);
    c.setAAD(aad(place, k.id));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), k.id, iv, body, c.getAuthTag()]);
  }

  /**
   * The plaintext, or row-undecryptable when the value was sealed for another place, under a key not
   * given, or changed. The caller wipes the returned buffer when done.
   */
  open(place: RowPlace, sealed: Uint8Array): Buffer {
    const fail = (why: string) =>
      new DomainError(
        'row-undecryptable',
        `the sealed value of ${place.table} row ${place.id} (state ${place.state}) does not open: ${why}`,
      );
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (buf.length < HEADER + TAG || buf[0] !== VERSION) throw fail('not a sealed value of this format');
    const keyId = buf.subarray(1, 9);
    const k = this.keys.find((x) => x.id.equals(keyId));
    if (!k)
      throw fail(
        `it was sealed under service key ${keyId.toString('hex')}, which this replica does not have`,
      );
    const d = createDecipheriv('aes-256-gcm', k.aes, buf.subarray(9, HEADER));
    d.setAAD(aad(place, k.id));
    d.setAuthTag(buf.subarray(buf.length - TAG));
    try {
      return Buffer.concat([d.update(buf.subarray(HEADER, buf.length - TAG)), d.final()]);
    } catch {
      throw fail('it belongs to another row or state, or was changed');
    }
  }

  /** The key id (hex) a sealed value names, for re-sealing after a rotation. */
  static keyIdOf(sealed: Uint8Array): string {
    return Buffer.from(sealed.subarray(1, 9)).toString('hex');
  }
}
