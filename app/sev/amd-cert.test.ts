import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import {
  AmdUsage,
  amdPublicKeyObject,
  parseAmdCert,
  serializeAmdCert,
  splitAskArk,
  verifyAmdCertSignature,
  verifyAmdPair,
} from './amd-cert';
import { GENERATIONS, PINNED_KEY_IDS, pinnedAnchor, TrustStore } from './roots';
import { concat, toHex, writeU32le } from './bytes';
import { SevError } from './errors';
import { forgeRoot } from '../../test/sev/chain-forge-helper';

const rd = (gen: string, which: 'ark' | 'ask') =>
  new Uint8Array(readFileSync(path.join(process.cwd(), 'assets/amd-roots', gen, `${which}.cert`)));

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SevError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'ok';
}

// Key ids copied from the docs/protocol.md §2 table (not from roots.ts), so the two are cross-checked.
const DOC_IDS: Record<string, [string, string]> = {
  naples: ['1bb987c359494606b174945601c9ea5b', 'e139970cfc464377ae61b289e2f9e96e'],
  rome: ['e6002122fb58419399d15fee7b131351', 'c6cbcf145b3146f498e40ecb4ad4fded'],
  milan: ['94c38e4177d0479292a7ae671d083fb6', '73478c05cc174bfeb06e718fa75dc3c8'],
  genoa: ['9f9d4a8fe761456599f6946c4c010f3a', 'acbb4ad21acc436fb3e932f812cd01b0'],
  turin: ['d05c3a8bde484904b49552422ceb3942', '15051693f7304d65a527b4a7f3f7cb77'],
};

describe('pinned AMD roots', () => {
  for (const gen of GENERATIONS) {
    it(`${gen}: ARK self-signature and ARK -> ASK verify; key ids match the protocol doc`, () => {
      const { ark, ask } = verifyAmdPair(rd(gen, 'ark'), rd(gen, 'ask'), gen);
      expect(toHex(ark.keyId)).toBe(DOC_IDS[gen]![0]);
      expect(toHex(ask.keyId)).toBe(DOC_IDS[gen]![1]);
      expect(toHex(ark.certifyingId)).toBe(DOC_IDS[gen]![0]);
      expect(toHex(ask.certifyingId)).toBe(DOC_IDS[gen]![0]);
      expect(PINNED_KEY_IDS[gen]).toEqual({ ark: DOC_IDS[gen]![0], ask: DOC_IDS[gen]![1] });
      expect(ark.modulusBits).toBe(gen === 'naples' ? 2048 : 4096);
      // The embedded (generated) copy is the same as the asset files.
      const a = pinnedAnchor(gen);
      expect(serializeAmdCert(a.ark)).toEqual(rd(gen, 'ark'));
      expect(a.askBytes).toEqual(rd(gen, 'ask'));
      expect(amdPublicKeyObject(ark).asymmetricKeyDetails?.publicExponent).toBe(65537n);
    });

    it(`${gen}: serialize(parse(x)) == x and ASK||ARK splits back`, () => {
      for (const w of ['ark', 'ask'] as const)
        expect(serializeAmdCert(parseAmdCert(rd(gen, w)))).toEqual(rd(gen, w));
      const { ask, ark } = splitAskArk(concat(rd(gen, 'ask'), rd(gen, 'ark')));
      expect(ask).toEqual(rd(gen, 'ask'));
      expect(ark).toEqual(rd(gen, 'ark'));
    });
  }

  it("no generation's ARK signs another generation's ASK", () => {
    for (const g of GENERATIONS) {
      for (const h of GENERATIONS.filter((x) => x !== g)) {
        const ark = parseAmdCert(rd(g, 'ark'));
        const ask = parseAmdCert(rd(h, 'ask'));
        expect(codeOf(() => verifyAmdCertSignature(ask, ark))).toMatch(/^bad-signature/);
      }
    }
  });
});

describe('AMD certificate parsing errors', () => {
  const ask = rd('rome', 'ask');

  it('wrong sizes', () => {
    expect(codeOf(() => parseAmdCert(ask.subarray(0, 10)))).toMatch(
      /^bad-length: .*832 or 1600 bytes, got 10/,
    );
    expect(codeOf(() => parseAmdCert(ask.subarray(0, 1599)))).toMatch(
      /^bad-length: .*a 4096-bit AMD certificate is 1600 bytes, got 1599/,
    );
    expect(codeOf(() => parseAmdCert(concat(ask, new Uint8Array(1))))).toMatch(/^bad-length/);
  });

  it('wrong version, usage, key sizes', () => {
    const edit = (off: number, v: number) => {
      const b = ask.slice();
      writeU32le(b, off, v);
      return b;
    };
    expect(codeOf(() => parseAmdCert(edit(0, 2)))).toMatch(/^bad-version: .*version must be 1, got 2/);
    expect(codeOf(() => parseAmdCert(edit(0x24, 0x14)))).toMatch(/^bad-usage: .*got 0x14/);
    expect(codeOf(() => parseAmdCert(ask, 'x', AmdUsage.ARK))).toMatch(
      /^bad-usage: x: expected an ARK certificate, got an ASK/,
    );
    expect(codeOf(() => parseAmdCert(edit(0x3c, 3072)))).toMatch(
      /^bad-key: .*modulus size must be 2048 or 4096 bits, got 3072/,
    );
    expect(codeOf(() => parseAmdCert(edit(0x38, 2048)))).toMatch(
      /^bad-key: .*public exponent size \(2048 bits\)/,
    );
  });

  it('ASK||ARK files of the wrong size, and the unsigned Naples ARK', () => {
    const nAsk = rd('naples', 'ask');
    const nArk = rd('naples', 'ark');
    expect(codeOf(() => splitAskArk(concat(nAsk, nArk.subarray(0, 576))))).toMatch(
      /^bad-signature: .*has no signature/,
    );
    expect(codeOf(() => splitAskArk(nAsk))).toMatch(/^bad-length: .*expected 1664 or 3200 bytes/);
    expect(codeOf(() => splitAskArk(new Uint8Array(3)))).toMatch(/^bad-length/);
  });

  it('an ASK cannot sign, and the ARK must match the certifying id', () => {
    const rome = parseAmdCert(rd('rome', 'ask'));
    const milanArk = parseAmdCert(rd('milan', 'ark'));
    expect(codeOf(() => verifyAmdCertSignature(rome, rome))).toMatch(/signer must be an ARK/);
    expect(codeOf(() => verifyAmdCertSignature(rome, milanArk))).toMatch(
      /certifying id c?[0-9a-f]+ is not the signer's key id/,
    );
  });

  it('random bytes and truncations give SevErrors only', () => {
    const reals = GENERATIONS.flatMap((g) => [rd(g, 'ark'), rd(g, 'ask')]);
    const only = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        if (!(e instanceof SevError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3300 }), fc.nat(), fc.nat(1600), (rand, pick, cut) => {
        only(() => parseAmdCert(rand));
        only(() => splitAskArk(rand));
        only(() => TrustStore.empty().addAskArk(rand, 'random'));
        const r = reals[pick % reals.length]!;
        only(() => parseAmdCert(r.subarray(0, cut)));
        const m = r.slice();
        m.set(rand.subarray(0, 80), 0);
        only(() => parseAmdCert(m));
        only(() => verifyAmdPair(m, r));
      }),
      { numRuns: 300 },
    );
  });
});

describe('TrustStore extras', () => {
  it('adds an ASK||ARK file, checks it, and labels it', () => {
    const root = forgeRoot();
    const t = TrustStore.empty();
    const a = t.addAskArk(root.askArk, 'lab.cert');
    expect(a.label).toEqual({ kind: 'extra', label: 'lab.cert', askKeyId: toHex(root.ask.keyId) });
    expect(t.anchors()).toHaveLength(1);
    // An ASK||ARK whose ASK was not signed by that ARK is refused.
    const other = forgeRoot();
    expect(codeOf(() => t.addAskArk(concat(root.askBytes, other.arkBytes), 'mixed'))).toMatch(
      /^bad-signature: mixed: ARK -> ASK/,
    );
  });
});
