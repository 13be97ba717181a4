import { describe, expect, it } from 'vitest';
import { parseCrl, verifyCrl } from '../snp/crl';
import { pemCertificates } from '../snp/chain';
import { SimulatedSnpFirmware } from './snp-firmware';

// RSA-4096 key generation takes seconds on a loaded machine: kept out of the unit project.
describe('roots as AMD makes them', () => {
  it("RSA-4096 roots as AMD's; the CRL parses, is ARK-signed and revokes nothing by default", async () => {
    const fw = await SimulatedSnpFirmware.create({ product: 'Genoa' });
    const set = fw.rootSet();
    expect(set.ark.subjectCn).toBe('ARK-Genoa');
    expect(set.ask.subjectCn).toBe('SEV-Genoa');
    expect(set.asvk.subjectCn).toBe('SEV-VLEK-Genoa');
    expect(set.ark.publicKey.asymmetricKeyDetails?.modulusLength).toBe(4096);
    const crl = parseCrl(fw.roots.crl);
    verifyCrl(crl, set.ark, new Date());
    expect(crl.revoked.size).toBe(0);
    const chain = pemCertificates(fw.roots.certChainPem);
    expect(chain.map((c) => Buffer.from(c))).toEqual([Buffer.from(fw.roots.ask), Buffer.from(fw.roots.ark)]);
  }, 120_000);
});
