import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import {
  verifyChain,
  verifyPlatformLinks,
  splitCertChain,
  VerifiedLinkCache,
  CERT_CHAIN_SIZE,
} from './chain';
import { GENERATIONS, TrustStore, type Generation } from './roots';
import { emptySlot, parseSevCert, serializeSevCert, verifySevCertSignature } from './cert';
import { concat } from './bytes';
import { SevError } from './errors';
import { forgeChain } from '../../test/sev/chain-forge-helper';

const FIX = path.join(process.cwd(), 'test/fixtures/platforms');
const rd = (p: string) => new Uint8Array(readFileSync(path.join(FIX, p)));

function realChain(gen: 'naples' | 'rome') {
  return {
    pdh: rd(`${gen}-real/pdh.cert`),
    certChain: concat(rd(`${gen}-real/pek.cert`), rd(`${gen}-real/oca.cert`), rd(`${gen}-real/cek.cert`)),
  };
}

const unsignedExports = [
  'exported-unsigned-cek',
  ...readdirSync(path.join(FIX, 'exported-unsigned-cek-more')).map((d) => `exported-unsigned-cek-more/${d}`),
];

function sevErrorOf(f: () => unknown): SevError {
  try {
    f();
  } catch (e) {
    if (e instanceof SevError) return e;
    throw e;
  }
  throw new Error('expected a SevError, but the call succeeded');
}

describe('real chains against the pinned roots', () => {
  for (const gen of ['naples', 'rome'] as const) {
    it(`${gen}-real verifies and names its generation`, () => {
      const r = verifyChain(realChain(gen), TrustStore.pinned());
      expect(r.anchor).toEqual({ kind: 'amd', generation: gen });
      expect(r.generation).toBe(gen);
      expect(r.cekSource).toBe('chain');
      expect(`${r.apiMajor}.${r.apiMinor}`).toBe(gen === 'naples' ? '0.16' : '0.22');
    });

    for (const other of GENERATIONS.filter((g) => g !== gen)) {
      it(`${gen}-real is not trusted by a store holding only ${other}`, () => {
        const e = sevErrorOf(() => verifyChain(realChain(gen), TrustStore.pinned([other])));
        expect(e.code).toBe('chain-not-trusted');
        expect(e.message).toContain(`trusted: ${other}`);
      });
    }
  }

  it('an empty TrustStore trusts nothing', () => {
    expect(sevErrorOf(() => verifyChain(realChain('rome'), TrustStore.empty())).code).toBe(
      'chain-not-trusted',
    );
  });

  it('names the failing link: PDH signed by the wrong platform', () => {
    const c = realChain('rome');
    const e = sevErrorOf(() => verifyChain({ ...c, pdh: rd('naples-real/pdh.cert') }, TrustStore.pinned()));
    expect(e.code).toBe('bad-signature');
    expect(e.message).toMatch(/^PEK -> PDH: signature does not verify/);
  });

  it('names the failing link: OCA of another platform', () => {
    const c = realChain('rome');
    const mixed = concat(rd('rome-real/pek.cert'), rd('naples-real/oca.cert'), rd('rome-real/cek.cert'));
    const e = sevErrorOf(() => verifyChain({ ...c, certChain: mixed }, TrustStore.pinned()));
    expect(e.message).toMatch(/^OCA -> PEK: signature does not verify/);
  });

  it('names the failing link: CEK of another platform', () => {
    const mixed = concat(rd('rome-real/pek.cert'), rd('rome-real/oca.cert'), rd('naples-real/cek.cert'));
    const e = sevErrorOf(() =>
      verifyChain({ pdh: rd('rome-real/pdh.cert'), certChain: mixed }, TrustStore.pinned()),
    );
    expect(e.message).toMatch(/^CEK -> PEK: signature does not verify/);
  });

  it('rejects certificates in the wrong positions (PDH given as the PEK)', () => {
    const mixed = concat(rd('rome-real/pdh.cert'), rd('rome-real/oca.cert'), rd('rome-real/cek.cert'));
    const e = sevErrorOf(() =>
      verifyChain({ pdh: rd('rome-real/pdh.cert'), certChain: mixed }, TrustStore.pinned()),
    );
    expect(e.code).toBe('bad-usage');
    expect(e.message).toContain('PEK (cert-chain): expected usage PEK, got PDH');
  });

  it('the Naples CEK does not verify under the Rome ASK (virtee negative vector)', () => {
    const rome = TrustStore.pinned(['rome']).anchors()[0]!;
    const e = sevErrorOf(() => verifySevCertSignature(rd('naples-real/cek.cert'), rome.ask));
    expect(e.code).toBe('bad-signature');
  });

  it('a signed CEK may also be supplied: a chain whose CEK had its signature stripped', () => {
    const c = realChain('rome');
    const cek = parseSevCert(rd('rome-real/cek.cert'));
    const stripped = serializeSevCert({ ...cek, sigs: [emptySlot(), emptySlot()] });
    const chain = concat(c.certChain.subarray(0, 2 * 2084), stripped);
    expect(sevErrorOf(() => verifyChain({ pdh: c.pdh, certChain: chain }, TrustStore.pinned())).code).toBe(
      'cek-unsigned',
    );
    const r = verifyChain(
      { pdh: c.pdh, certChain: chain, cek: rd('rome-real/cek.cert') },
      TrustStore.pinned(),
    );
    expect(r.generation).toBe('rome');
    expect(r.cekSource).toBe('supplied');
  });

  it('the verified-link cache gives the same answers and fills once per link', () => {
    const cache = new VerifiedLinkCache();
    const a = verifyChain(realChain('naples'), TrustStore.pinned(), { linkCache: cache });
    expect(cache.size).toBe(5);
    const b = verifyChain(realChain('naples'), TrustStore.pinned(), { linkCache: cache });
    expect(cache.size).toBe(5);
    expect(b.anchor).toEqual(a.anchor);
    const bad = realChain('naples');
    bad.pdh[0x100]! ^= 1;
    expect(() => verifyChain(bad, TrustStore.pinned(), { linkCache: cache })).toThrow(/PEK -> PDH/);
  });
});

describe('real unsigned-CEK exports (API 1.51)', () => {
  for (const dir of unsignedExports) {
    it(`${dir}: PEK -> PDH and OCA -> PEK verify; the chain reports cek-unsigned`, () => {
      const input = { pdh: rd(`${dir}/pdh.cert`), certChain: rd(`${dir}/cert_chain.cert`) };
      const links = verifyPlatformLinks(input);
      expect(links.verified).toBe(true);
      expect(links.chainCekUnsigned).toBe(true);
      expect(`${links.pdh.apiMajor}.${links.pdh.apiMinor}`).toBe('1.51');
      const e = sevErrorOf(() => verifyChain(input, TrustStore.pinned()));
      expect(e.code).toBe('cek-unsigned');
      expect(e.message).toContain('PEK -> PDH and OCA -> PEK verified');
      expect(e.message).toContain('ASK-signed CEK');
    });
  }

  it('a supplied CEK holding another public key is rejected', () => {
    const input = {
      pdh: rd('exported-unsigned-cek/pdh.cert'),
      certChain: rd('exported-unsigned-cek/cert_chain.cert'),
    };
    for (const other of [rd('rome-real/cek.cert'), rd('naples-real/cek.cert')]) {
      const e = sevErrorOf(() => verifyChain({ ...input, cek: other }, TrustStore.pinned()));
      expect(e.code).toBe('bad-key');
      expect(e.message).toContain("differs from the cert-chain's CEK");
    }
  });

  it("a supplied CEK equal to the chain's unsigned CEK is reported as unsigned", () => {
    const input = {
      pdh: rd('exported-unsigned-cek/pdh.cert'),
      certChain: rd('exported-unsigned-cek/cert_chain.cert'),
    };
    const cek = splitCertChain(input.certChain).cek;
    expect(sevErrorOf(() => verifyChain({ ...input, cek }, TrustStore.pinned())).code).toBe('cek-unsigned');
  });
});

describe('a forged, self-consistent chain under an attacker ARK/ASK', () => {
  const forged = forgeChain();

  it('is internally consistent (all platform links verify)', () => {
    expect(verifyPlatformLinks({ pdh: forged.pdh, certChain: forged.certChain }).verified).toBe(true);
  });

  it('is rejected by the pinned roots', () => {
    const e = sevErrorOf(() =>
      verifyChain({ pdh: forged.pdh, certChain: forged.certChain }, TrustStore.pinned()),
    );
    expect(e.code).toBe('chain-not-trusted');
  });

  it('is accepted only once its ASK||ARK is added, labelled extra', () => {
    const trust = TrustStore.pinned();
    const anchor = trust.addAskArk(forged.root.askArk, 'lab-ask-ark.cert');
    const r = verifyChain({ pdh: forged.pdh, certChain: forged.certChain }, trust);
    expect(r.anchor).toEqual({
      kind: 'extra',
      label: 'lab-ask-ark.cert',
      askKeyId: anchor.label.kind === 'extra' ? anchor.label.askKeyId : '',
    });
    expect(r.generation).toBeUndefined();
  });

  it('with an unsigned CEK in the chain, works with the signed CEK supplied', () => {
    const trust = TrustStore.empty();
    trust.addAskArk(forged.root.askArk, 'lab');
    const input = { pdh: forged.pdh, certChain: forged.certChainUnsignedCek };
    expect(sevErrorOf(() => verifyChain(input, trust)).code).toBe('cek-unsigned');
    expect(verifyChain({ ...input, cek: forged.signedCek }, trust).cekSource).toBe('supplied');
  });

  it('a forged CEK claiming the key of a real chain still fails (PEK signatures bind the key)', () => {
    const trust = TrustStore.pinned();
    trust.addAskArk(forged.root.askArk, 'lab');
    // The attacker's signed CEK with a real platform's PDH/PEK/OCA: the key comparison rejects it.
    const real = {
      pdh: rd('exported-unsigned-cek/pdh.cert'),
      certChain: rd('exported-unsigned-cek/cert_chain.cert'),
    };
    expect(sevErrorOf(() => verifyChain({ ...real, cek: forged.signedCek }, trust)).code).toBe('bad-key');
  });
});

describe('bad input always gives a SevError', () => {
  const certs = [
    rd('rome-real/pdh.cert'),
    rd('rome-real/pek.cert'),
    rd('naples-real/oca.cert'),
    rd('naples-real/cek.cert'),
  ];
  const store = TrustStore.pinned();

  function onlySevErrors(f: () => unknown): void {
    try {
      f();
    } catch (e) {
      if (!(e instanceof SevError)) throw e;
    }
  }

  it('random bytes into parseSevCert and verifyChain', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 7000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
        onlySevErrors(() => parseSevCert(a));
        onlySevErrors(() => verifyChain({ pdh: b, certChain: a }, store));
        onlySevErrors(() =>
          verifyChain({ pdh: b, certChain: new Uint8Array(CERT_CHAIN_SIZE), cek: a }, store),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('truncated and mutated real certificates into parseSevCert and verifyChain', () => {
    const real = realChain('rome');
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 2084 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2083 }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        (which, cut, edits) => {
          const c = certs[which]!.slice();
          for (const [i, v] of edits) c[i] = v;
          onlySevErrors(() => parseSevCert(c.subarray(0, cut)));
          onlySevErrors(() => parseSevCert(c));
          onlySevErrors(() => verifyChain({ pdh: c, certChain: real.certChain }, store));
          const chain = real.certChain.slice();
          chain.set(c, (which % 3) * 2084);
          onlySevErrors(() => verifyChain({ pdh: real.pdh, certChain: chain }, store));
          onlySevErrors(() => verifyChain({ pdh: real.pdh, certChain: chain.subarray(0, cut * 3) }, store));
          onlySevErrors(() => verifyChain({ ...real, cek: c }, store));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('every generation root is in the pinned store exactly once', () => {
    const gens = TrustStore.pinned()
      .anchors()
      .map((a) => (a.label.kind === 'amd' ? a.label.generation : 'extra'));
    expect(gens).toEqual([...GENERATIONS] as Generation[]);
  });
});
