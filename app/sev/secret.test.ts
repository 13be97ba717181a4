import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createDecipheriv, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  LAUNCH_SECRET_MAX_LENGTH,
  LUKS_PASSPHRASE_GUID,
  SecretTable,
  checkSecretLength,
  packageSecret,
} from './secret';
import { concat, fromBase64, readU32le, toBase64, toHex, u32le } from './bytes';
import { SevError } from './errors';

const SECRET = join(process.cwd(), 'test/fixtures/vectors/sevctl/secret');
const read = (name: string) => new Uint8Array(readFileSync(join(SECRET, name)));
const tek = read('tek1.bin');
const tik = read('tik1.bin');
const measure = fromBase64('TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS').slice(0, 32);
const iv = fromBase64('rFR07U3TLH2YnsUj2SVZ7A==');

/** The firmware side of LAUNCH_SECRET, written from docs/protocol.md §7 (not from secret.ts). */
function firmwareOpen(
  header: Uint8Array,
  payload: Uint8Array,
  keys: { tek: Uint8Array; tik: Uint8Array },
  m: Uint8Array | null,
) {
  expect(header.length).toBe(52);
  const flags = header.subarray(0, 4);
  const hiv = header.subarray(4, 20);
  const mac = header.subarray(20, 52);
  const h = createHmac('sha256', keys.tik).update(Uint8Array.of(1)).update(flags).update(hiv);
  h.update(u32le(payload.length)).update(u32le(payload.length)).update(payload);
  if (m) h.update(m);
  const d = createDecipheriv('aes-128-ctr', keys.tek, hiv);
  return {
    macOk: h.digest('hex') === toHex(mac),
    flags: readU32le(flags, 0),
    plain: new Uint8Array(Buffer.concat([d.update(payload), d.final()])),
  };
}

describe('sevctl secretbuild vectors', () => {
  it('one LUKS entry (secret1.txt)', () => {
    const table = new SecretTable().add(LUKS_PASSPHRASE_GUID, read('secret1.txt')).build();
    const p = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 40, iv });
    expect(toBase64(p.header)).toBe(
      'AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==',
    );
    expect(toBase64(p.payload)).toBe(
      '0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==',
    );
  });

  it('two entries (secret1.txt, secret2.txt)', () => {
    const table = new SecretTable()
      .add(LUKS_PASSPHRASE_GUID, read('secret1.txt'))
      .add('736869e5-aaaa-4973-92ec-06879ce3da0b', read('secret2.txt'))
      .build();
    const p = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 40, iv });
    expect(toBase64(p.header)).toBe(
      'AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==',
    );
    expect(toBase64(p.payload)).toBe(
      '0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe',
    );
    const fw = firmwareOpen(p.header, p.payload, { tek, tik }, measure);
    expect(fw.macOk).toBe(true);
    const back = SecretTable.parse(fw.plain);
    expect(back.entries.map((e) => e.guid)).toEqual([
      LUKS_PASSPHRASE_GUID,
      '736869e5-aaaa-4973-92ec-06879ce3da0b',
    ]);
    expect(Buffer.from(back.entries[1]!.data).toString()).toBe('SOME OTHER SECRET');
  });

  it('padding: secret3 (16343 B) and secret4 (16344 B) give 16384 bytes; libvirt 9 pads secret4 to 16400', () => {
    const t3 = new SecretTable().add(LUKS_PASSPHRASE_GUID, read('secret3.txt'));
    const t4 = new SecretTable().add(LUKS_PASSPHRASE_GUID, read('secret4.txt'));
    expect(t3.build().length).toBe(16384);
    expect(t4.build().length).toBe(16384);
    expect(t4.build({ padding: 'aligned' }).length).toBe(16384);
    expect(t4.build({ padding: 'libvirt9' }).length).toBe(16400);
    expect(t3.build({ padding: 'libvirt9' }).length).toBe(16384);
    for (const table of [t3.build(), t4.build({ padding: 'libvirt9' })]) {
      const p = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 40, iv });
      expect(p.payload.length).toBe(table.length);
      const fw = firmwareOpen(p.header, p.payload, { tek, tik }, measure);
      expect(fw.macOk).toBe(true);
      expect(SecretTable.parse(fw.plain).entries[0]!.data.length).toBeGreaterThan(16000);
    }
  });
});

describe('SecretTable', () => {
  it('lays out header, entries and length fields as efi_secret.c describes', () => {
    const t = new SecretTable().add(LUKS_PASSPHRASE_GUID, Uint8Array.of(1, 2, 3)).build();
    expect(toHex(t.subarray(0, 16))).toBe('42f5741edd71664d963eef4287ff173b');
    expect(readU32le(t, 16)).toBe(20 + 23);
    expect(toHex(t.subarray(20, 36))).toBe('e5696873f084734992ec06879ce3da0b');
    expect(readU32le(t, 36)).toBe(23);
    expect([...t.subarray(40, 43)]).toEqual([1, 2, 3]);
    expect(t.length).toBe(48);
    expect(t.subarray(43).every((b) => b === 0)).toBe(true);
  });

  it("addLuksPassphrase writes UTF-8 with the NUL grub's efisecret requires", () => {
    const t = new SecretTable().addLuksPassphrase('pässword');
    const data = t.entries[0]!.data;
    expect(toHex(data)).toBe(toHex(concat(new TextEncoder().encode('pässword'), Uint8Array.of(0))));
    expect(() => new SecretTable().addLuksPassphrase('')).toThrow(/empty/);
    expect(() => new SecretTable().addLuksPassphrase('a\0b')).toThrow(/NUL/);
  });

  it('rejects duplicate GUIDs, bad GUIDs, empty tables and unknown padding', () => {
    const t = new SecretTable().addLuksPassphrase('x');
    expect(() => t.add(LUKS_PASSPHRASE_GUID.toUpperCase(), Uint8Array.of(1))).toThrow(/already has an entry/);
    expect(() => t.add('luks-key', Uint8Array.of(1))).toThrow(/secret GUID must look like/);
    expect(() => new SecretTable().build()).toThrow(/no entries/);
    expect(() => t.build({ padding: 'none' as never })).toThrow(/unknown secret table padding/);
  });

  it('parse gives exact errors', () => {
    const good = new SecretTable().add(LUKS_PASSPHRASE_GUID, Uint8Array.of(1, 2, 3)).build();
    expect(() => SecretTable.parse(good.subarray(0, 10))).toThrow(/shorter than its 20-byte header/);
    const wrongGuid = Uint8Array.from(good);
    wrongGuid[0]! ^= 1;
    expect(() => SecretTable.parse(wrongGuid)).toThrow(/header GUID is/);
    const longLen = Uint8Array.from(good);
    longLen[16] = 200;
    expect(() => SecretTable.parse(longLen)).toThrow(/length field 200 is outside 20..48/);
    const dirtyPad = Uint8Array.from(good);
    dirtyPad[47] = 1;
    expect(() => SecretTable.parse(dirtyPad)).toThrow(/non-zero byte at offset 47/);
    const badEntry = Uint8Array.from(good);
    badEntry[36] = 5;
    expect(() => SecretTable.parse(badEntry)).toThrow(/has length 5, outside 20..23/);
  });

  it('property: build/parse round trip for both paddings', () => {
    const entry = fc.record({ guid: fc.uuid(), data: fc.uint8Array({ maxLength: 64 }) });
    fc.assert(
      fc.property(
        fc.uniqueArray(entry, { minLength: 1, maxLength: 6, selector: (e) => e.guid }),
        fc.constantFrom('aligned' as const, 'libvirt9' as const),
        (entries, padding) => {
          const t = new SecretTable();
          for (const e of entries) t.add(e.guid, e.data);
          const bytes = t.build({ padding });
          expect(bytes.length % 16).toBe(0);
          const back = SecretTable.parse(bytes);
          expect(back.entries.map((e) => [e.guid, toHex(e.data)])).toEqual(
            entries.map((e) => [e.guid.toLowerCase(), toHex(e.data)]),
          );
        },
      ),
    );
  });

  it('property: parse of random bytes is a table or a SevError, never a crash', () => {
    const header = new SecretTable().addLuksPassphrase('x').build().subarray(0, 16);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (tail, withGuid) => {
        const bytes = withGuid ? concat(header, tail) : tail;
        try {
          const t = SecretTable.parse(bytes);
          expect(t.entries.length).toBeGreaterThan(0);
        } catch (e) {
          expect(e).toBeInstanceOf(SevError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('packageSecret', () => {
  const table = new SecretTable().addLuksPassphrase('hunter2').build();

  it('omits the measure from the MAC for API < 0.17 (sev-tool)', () => {
    const p = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 0, apiMinor: 16, iv });
    expect(firmwareOpen(p.header, p.payload, { tek, tik }, null).macOk).toBe(true);
    expect(firmwareOpen(p.header, p.payload, { tek, tik }, measure).macOk).toBe(false);
    const q = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 0, apiMinor: 17, iv });
    expect(firmwareOpen(q.header, q.payload, { tek, tik }, measure).macOk).toBe(true);
  });

  it('uses a fresh random IV when none is given', () => {
    const a = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 0 });
    const b = packageSecret({ tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 0 });
    expect(toHex(a.header.subarray(4, 20))).not.toBe(toHex(b.header.subarray(4, 20)));
    expect(readU32le(a.header, 0)).toBe(0);
  });

  it('enforces the firmware limits and input sizes', () => {
    expect(() => checkSecretLength(0)).toThrow(/empty/);
    expect(() => checkSecretLength(40)).toThrow(/multiple of 16/);
    expect(() => checkSecretLength(LAUNCH_SECRET_MAX_LENGTH + 16)).toThrow(/at most 20480 \(0x5000\)/);
    expect(() => checkSecretLength(LAUNCH_SECRET_MAX_LENGTH)).not.toThrow();
    const base = { tek, tik, table, measurement: measure, apiMajor: 1, apiMinor: 0 };
    expect(() => packageSecret({ ...base, table: new Uint8Array(17) })).toThrow(/multiple of 16/);
    expect(() => packageSecret({ ...base, measurement: new Uint8Array(48) })).toThrow(
      /32-byte measure, not the 48-byte blob/,
    );
    expect(() => packageSecret({ ...base, tek: new Uint8Array(32) })).toThrow(/TEK must be 16 bytes/);
    expect(() => packageSecret({ ...base, iv: new Uint8Array(12) })).toThrow(/IV must be 16 bytes/);
  });
});
