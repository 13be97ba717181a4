import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RowCipher } from './row-cipher';
import { loadServiceKeys, parseServiceKey, parseServiceKeys } from './service-key';

const keyA = parseServiceKey(randomBytes(32).toString('base64'), 'test');
const keyB = parseServiceKey(randomBytes(32).toString('hex'), 'test');
const place = { table: 'connections', id: '5b1f4f0e-0f7e-4d8e-9d51-2b7f7b0a1c11', state: 'open' };

describe('RowCipher (AES-256-GCM, AAD = table|id|state|key id)', () => {
  it('opens what it sealed, and never carries the plaintext in clear', () => {
    const c = new RowCipher([keyA]);
    const secret = Buffer.from('the TEK and TIK of one launch....');
    const sealed = c.seal(place, secret);
    expect(sealed.includes(secret)).toBe(false);
    expect(c.open(place, sealed)).toEqual(secret);
    // A fresh IV per seal: the same value twice is two different ciphertexts.
    expect(c.seal(place, secret).equals(sealed)).toBe(false);
  });

  it('refuses a ciphertext moved to another row, table or state', () => {
    const c = new RowCipher([keyA]);
    const sealed = c.seal(place, Buffer.from('secret'));
    for (const other of [
      { ...place, id: '5b1f4f0e-0f7e-4d8e-9d51-2b7f7b0a1c12' },
      { ...place, table: 'secrets' },
      { ...place, state: 'in-use' },
    ]) {
      expect(() => c.open(other, sealed)).toThrow(/does not open: it belongs to another row or state/);
    }
  });

  it('refuses a changed ciphertext, a wrong key and a truncated value', () => {
    const c = new RowCipher([keyA]);
    const sealed = c.seal(place, Buffer.from('secret'));
    for (let i = 9; i < sealed.length; i += 7) {
      const t = Buffer.from(sealed);
      t[i]! ^= 1;
      expect(() => c.open(place, t)).toThrow(/does not open/);
    }
    expect(() => new RowCipher([keyB]).open(place, sealed)).toThrow(/which this replica does not have/);
    expect(() => c.open(place, sealed.subarray(0, 20))).toThrow(/not a sealed value/);
  });

  it('rotation: the first key seals, an older key still opens its rows', () => {
    const old = new RowCipher([keyA]).seal(place, Buffer.from('old'));
    const rotated = new RowCipher([keyB, keyA]);
    expect(rotated.open(place, old).toString()).toBe('old');
    const fresh = rotated.seal(place, Buffer.from('new'));
    expect(RowCipher.keyIdOf(fresh)).toBe(keyB.id.toString('hex'));
    expect(() => new RowCipher([keyA]).open(place, fresh)).toThrow(/does not have/);
  });
});

describe('service key', () => {
  it('accepts 32 bytes as base64 or hex, refuses anything else', () => {
    expect(parseServiceKey(randomBytes(32).toString('base64url'), 't').bytes).toHaveLength(32);
    expect(() => parseServiceKey(randomBytes(16).toString('base64'), 't')).toThrow(/not 32 bytes/);
    expect(() => parseServiceKey('00'.repeat(32), 't')).toThrow(/not random/);
    expect(() => parseServiceKeys('# only a comment\n', 't')).toThrow(/is empty/);
    const k = randomBytes(32).toString('base64');
    expect(() => parseServiceKeys(`${k}\n${k}\n`, 't')).toThrow(/same key twice/);
  });

  it('refuses a key file others can read, reads a 0600 one, falls back to the environment', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'sev-attest-key-'));
    try {
      const file = join(dir, 'service.key');
      fs.writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o644 });
      fs.chmodSync(file, 0o644);
      expect(() => loadServiceKeys({ file })).toThrow(/readable by others \(mode 644\): chmod 600/);
      fs.chmodSync(file, 0o600);
      expect(loadServiceKeys({ file })).toHaveLength(1);
      expect(() => loadServiceKeys({ file: join(dir, 'missing') })).toThrow(/cannot be read/);
      const env = {
        SEV_ATTEST_SERVICE_KEY: `${randomBytes(32).toString('hex')},${randomBytes(32).toString('base64')}`,
      };
      expect(loadServiceKeys({ env })).toHaveLength(2);
      expect(() => loadServiceKeys({ env: {} })).toThrow(/--database needs the service key/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
