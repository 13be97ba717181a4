/**
 * `serve --snp-roots FILE`: a lab's or simulated platform's ARK/ASK/ASVK and CRL become an extra SNP root
 * set beside AMD's, named by the file; files that are not such a set are refused in plain words.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import { pinnedSnpRoots } from '../../app/snp/roots';
import { extraSnpRootsFromPem, readExtraSnpRoots } from './snp-roots-file';

let fw: SimulatedSnpFirmware;
const pem = (der: Uint8Array, what = 'CERTIFICATE') =>
  `-----BEGIN ${what}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${what}-----\n`;

beforeAll(async () => {
  fw = await SimulatedSnpFirmware.create({ product: 'Genoa', rsaModulusBits: 2048 });
});

describe('--snp-roots', () => {
  it('reads the three certificates and the CRL in any order, labelled by the file as not AMD', () => {
    const file = join(fs.mkdtempSync(join(os.tmpdir(), 'snp-roots-')), 'lab.pem');
    fs.writeFileSync(
      file,
      pem(fw.roots.crl, 'X509 CRL') + pem(fw.roots.asvk) + pem(fw.roots.ark) + pem(fw.roots.ask),
    );
    const extra = readExtraSnpRoots(file);
    expect(extra.set.product).toBe('Genoa');
    expect(extra.set.ark.id).toBe(fw.rootSet().ark.id);
    expect(extra.set.ark.id).not.toBe(pinnedSnpRoots('Genoa').ark.id);
    expect(Buffer.from(extra.crl)).toEqual(Buffer.from(fw.roots.crl));
    expect(extra.label).toBe('lab.pem (--snp-roots, not AMD)');
  });

  it('refuses a file without the ASVK or the CRL, with mixed products, or unreadable, in plain words', async () => {
    const crl = pem(fw.roots.crl, 'X509 CRL');
    expect(() => extraSnpRootsFromPem(pem(fw.roots.ark) + pem(fw.roots.ask) + crl, 'lab.pem')).toThrow(
      /needs the ARK, ASK and ASVK certificates of one product and the ARK's CRL/,
    );
    expect(() =>
      extraSnpRootsFromPem(pem(fw.roots.ark) + pem(fw.roots.ask) + pem(fw.roots.asvk), 'lab.pem'),
    ).toThrow(/and the ARK's CRL/);
    const milan = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
    expect(() =>
      extraSnpRootsFromPem(pem(fw.roots.ark) + pem(fw.roots.ask) + pem(milan.roots.asvk) + crl, 'lab.pem'),
    ).toThrow(/certificates of Genoa and Milan in one file/);
    // An ASK signed by another ARK is no root set.
    const foreign = await SimulatedSnpFirmware.create({ product: 'Genoa', rsaModulusBits: 2048 });
    expect(() =>
      extraSnpRootsFromPem(pem(fw.roots.ark) + pem(foreign.roots.ask) + pem(fw.roots.asvk) + crl, 'lab.pem'),
    ).toThrow(/ARK -> ASK/);
    expect(() => readExtraSnpRoots('/nonexistent/roots.pem')).toThrow(
      /--snp-roots \/nonexistent\/roots.pem: cannot read it/,
    );
  });
});
