/** `serve --snp-roots FILE`: a lab's or simulated platform's ARK/ASK/ASVK replace AMD's for their product only. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import { pinnedSnpRoots } from '../../app/snp/roots';
import { snpRootSetFromPem, snpTrustWithRootFiles } from './snp-roots-file';

let fw: SimulatedSnpFirmware;
const pem = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

beforeAll(async () => {
  fw = await SimulatedSnpFirmware.create({ product: 'Genoa', rsaModulusBits: 2048 });
});

describe('--snp-roots', () => {
  it('reads the three certificates in any order and replaces only their product', () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'snp-roots-'));
    const file = join(dir, 'lab.pem');
    fs.writeFileSync(file, pem(fw.roots.asvk) + pem(fw.roots.ark) + pem(fw.roots.ask));
    const lines: string[] = [];
    const trust = snpTrustWithRootFiles([file], (l) => lines.push(l));
    expect(trust.roots('Genoa').ark.subjectCn).toBe('ARK-Genoa');
    expect(trust.roots('Genoa').ark.id).toBe(fw.rootSet().ark.id);
    expect(trust.roots('Genoa').ark.id).not.toBe(pinnedSnpRoots('Genoa').ark.id);
    expect(trust.roots('Milan')).toBe(pinnedSnpRoots('Milan'));
    expect(lines.join('\n')).toMatch(/Genoa reports are verified against the roots in .*lab\.pem, NOT AMD's/);
  });

  it('refuses a file without the ASVK, with mixed products, or unreadable, in plain words', async () => {
    expect(() => snpRootSetFromPem(pem(fw.roots.ark) + pem(fw.roots.ask), 'lab.pem')).toThrow(
      /needs the ARK, ASK and ASVK certificates of one product/,
    );
    const milan = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
    expect(() =>
      snpRootSetFromPem(pem(fw.roots.ark) + pem(fw.roots.ask) + pem(milan.roots.asvk), 'lab.pem'),
    ).toThrow(/certificates of Genoa and Milan in one file/);
    // An ASK signed by another ARK is no root set at all.
    expect(() =>
      snpRootSetFromPem(
        pem(fw.roots.ark) + pem(fw.roots.asvk) + pem(Buffer.from(milan.roots.ask)),
        'lab.pem',
      ),
    ).toThrow();
    expect(() => snpTrustWithRootFiles(['/nonexistent/roots.pem'])).toThrow(
      /--snp-roots \/nonexistent\/roots.pem: cannot read it/,
    );
  });
});
