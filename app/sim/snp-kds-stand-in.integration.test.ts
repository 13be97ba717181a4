import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnpKdsClient } from '../snp/kds';
import { parseReport } from '../snp/report';
import { decodeTcb } from '../snp/tcb';
import { verifyReport } from '../snp/verify';
import { SnpError } from '../snp/errors';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware } from './snp-firmware';
import { kdsStandIn, type SnpKdsStandIn } from './snp-kds-stand-in';

let milan: SimulatedSnpFirmware;
let turin: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };
const noSleep = { sleep: async () => undefined, backoffMs: 1, maxAttempts: 2 };

beforeAll(async () => {
  [milan, turin] = await Promise.all([
    SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 }),
    SimulatedSnpFirmware.create({ product: 'Turin', rsaModulusBits: 2048 }),
  ]);
  kds = await kdsStandIn([milan, turin]);
});
afterAll(async () => {
  await kds.stop();
});

describe('the key-server stand-in answers SnpKdsClient as AMD does', () => {
  it.each(['Milan', 'Turin'] as const)(
    '%s: the VCEK for the report chip and TCB, the chain and the CRL verify the report',
    async (product) => {
      const fw = product === 'Milan' ? milan : turin;
      const raw = fw
        .launch({ measurement: sha384('img'), policy: DEFAULT_SNP_POLICY })
        .getReport(new Uint8Array(64));
      const r = parseReport(raw);
      const client = new SnpKdsClient({ baseUrl: kds.url, ...noSleep });
      const vcek = await client.getVcek(product, r.chipId, decodeTcb(r.reportedTcb, product));
      expect(vcek.source).toBe('kds');
      expect(Buffer.from(vcek.der)).toEqual(Buffer.from(fw.vcek().der));
      const chain = await client.getChain(product, 'vcek');
      const crl = await client.getCrl(product);
      const v = verifyReport(raw, {
        vcek: vcek.der,
        chain,
        crl: crl.der,
        trust: fw.trustStore(),
      });
      expect(v.product).toBe(product);
      const vcekRequest = kds.requests.find(
        (q) => q.path.startsWith(`/vcek/v1/${product}/`) && q.path.includes('?'),
      );
      expect(vcekRequest?.path).toBe(
        client.vcekUrl(product, r.chipId, decodeTcb(r.reportedTcb, product)).slice(kds.url.length),
      );
      if (product === 'Turin') expect(vcekRequest?.path).toContain('fmcSPL=');
    },
  );

  it('a VCEK for another TCB is issued on request (what AMD does for every TCB)', async () => {
    const low = { bootloader: 1, tee: 0, snp: 5, microcode: 100 };
    const client = new SnpKdsClient({ baseUrl: kds.url, ...noSleep });
    const got = await client.getVcek('Milan', milan.chipId, low);
    expect(Buffer.from(got.der)).toEqual(Buffer.from(milan.vcek(low).der));
  });

  it('an unknown chip is 404 (kds-not-found); a key server that is down is kds-unavailable', async () => {
    const client = new SnpKdsClient({ baseUrl: kds.url, ...noSleep });
    const other = new Uint8Array(64).fill(0x5a);
    await expect(client.getVcek('Milan', other, milan.tcb)).rejects.toMatchObject({ code: 'kds-not-found' });
    kds.failWith = 503;
    try {
      const err = await client.getCrl('Milan').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SnpError);
      expect((err as SnpError).code).toBe('kds-unavailable');
    } finally {
      kds.failWith = undefined;
    }
  });

  it('missing SPL parameters are a 400, not a certificate', async () => {
    const hwid = Buffer.from(milan.hwid()).toString('hex');
    const res = await fetch(`${kds.url}/vcek/v1/Milan/${hwid}?blSPL=1`);
    expect(res.status).toBe(400);
  });

  it('firmware.kdsStandIn() serves that one chip', async () => {
    const own = await milan.kdsStandIn();
    try {
      const res = await fetch(`${own.url}/vcek/v1/Milan/crl`);
      expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from(milan.roots.crl));
      expect((await fetch(`${own.url}/vcek/v1/Turin/crl`)).status).toBe(404);
    } finally {
      await own.stop();
    }
  });
});
