import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseProduct, pinnedSnpRoots, SNP_PRODUCTS, SnpTrustStore } from './roots';
import { pemCertificates, verifySignedBy } from './chain';
import { SnpError } from './errors';

const ASSETS = path.join(process.cwd(), 'assets/amd-roots/snp');

describe('pinned SNP roots', () => {
  it.each(SNP_PRODUCTS)('%s: embedded roots equal the asset PEMs and chain ARK -> ASK, ARK -> ASVK', (p) => {
    const roots = pinnedSnpRoots(p);
    const lower = p.toLowerCase();
    const [ask, ark] = pemCertificates(readFileSync(path.join(ASSETS, `ask_ark_${lower}_vcek.pem`), 'utf8'));
    const [asvk, ark2] = pemCertificates(
      readFileSync(path.join(ASSETS, `ask_ark_${lower}_vlek.pem`), 'utf8'),
    );
    expect(Buffer.compare(roots.ark.der, ark!)).toBe(0);
    expect(Buffer.compare(roots.ark.der, ark2!)).toBe(0);
    expect(Buffer.compare(roots.ask.der, ask!)).toBe(0);
    expect(Buffer.compare(roots.asvk.der, asvk!)).toBe(0);
    expect([roots.ark.subjectCn, roots.ask.subjectCn, roots.asvk.subjectCn]).toEqual([
      `ARK-${p}`,
      `SEV-${p}`,
      `SEV-VLEK-${p}`,
    ]);
    expect(roots.ark.publicKey.asymmetricKeyDetails?.modulusLength).toBe(4096);
  });

  it("no product's ARK signed another product's ASK", () => {
    for (const a of SNP_PRODUCTS) {
      for (const b of SNP_PRODUCTS) {
        if (a === b) continue;
        expect(() =>
          verifySignedBy(pinnedSnpRoots(b).ask, pinnedSnpRoots(a).ark, `${a} ARK -> ${b} ASK`),
        ).toThrow(SnpError);
      }
    }
  });

  it('product names and stores', () => {
    expect(parseProduct('TURIN')).toBe('Turin');
    expect(() => parseProduct('rome')).toThrow(/unknown SNP product 'rome'/);
    expect(() => SnpTrustStore.pinned(['Milan']).roots('Genoa')).toThrow(/no pinned root for Genoa/);
  });
});
