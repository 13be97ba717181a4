import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../run';
import { makeCrl, makeTestRoots } from '../../test/helpers/snp-pki';

const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports');
let dir: string;
let server: Server;
let kdsUrl: string;
let outageUrl: string;
const requests: string[] = [];
let trusteeHwid = '';

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(['snp', 'verify-report', ...argv], {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
    cwd: dir,
  });
  return { code, out, err };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'snp-verify-'));
  for (const [from, to] of [
    ['trustee-milan/test-report.bin', 'milan.bin'],
    ['trustee-milan/test-vcek.der', 'milan-vcek.der'],
    ['virtee-sev-milan/report_milan.hex', 'virtee.hex'],
    ['virtee-sev-milan/vcek_milan.der', 'virtee-vcek.der'],
    ['trustee-vlek/test-vlek-report.bin', 'vlek.bin'],
    ['trustee-vlek/test-vlek.der', 'vlek.der'],
  ]) {
    copyFileSync(path.join(FIX, from!), path.join(dir, to!));
  }
  const report = readFileSync(path.join(dir, 'milan.bin'));
  trusteeHwid = report.subarray(0x1a0, 0x1e0).toString('hex');
  const tampered = Buffer.from(report);
  tampered[0x90] = tampered[0x90]! ^ 1;
  writeFileSync(path.join(dir, 'tampered.bin'), tampered);
  writeFileSync(path.join(dir, 'short.bin'), report.subarray(0, 100));
  writeFileSync(path.join(dir, 'foreign.crl'), makeCrl(makeTestRoots('Milan', 'cli')));
  const vcek = readFileSync(path.join(dir, 'milan-vcek.der'));
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const url = req.url ?? '';
    if (url.startsWith('/down/')) {
      res.writeHead(503, { 'retry-after': '0' });
      res.end();
    } else if (url === `/vcek/v1/Milan/${trusteeHwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`) {
      res.end(vcek);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kdsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  outageUrl = `${kdsUrl}/down`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('sev-attest snp verify-report', () => {
  it('verifies the real Milan report with its VCEK (CRL not on the stand-in: allowed), naming product, measurement, TCB', async () => {
    const r = await cli(
      '--report',
      'milan.bin',
      '--vcek',
      'milan-vcek.der',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^verified: Milan\n {2}measurement: {2}[0-9a-f]{96}\n {2}reported TCB: bl=3 tee=0 snp=8 ucode=115\n/,
    );
    expect(r.out).toContain('chain ARK-Milan -> SEV-Milan -> VCEK');
    expect(r.out).toContain(
      `revocation: NOT checked (--allow-missing-crl): AMD KDS (${kdsUrl}/vcek/v1/Milan/crl) does not have the Milan CRL (HTTP 404)`,
    );
  });

  it('fetches the VCEK from the key server by chip id and TCB (v2 report: --product)', async () => {
    requests.length = 0;
    const r = await cli(
      '--report',
      'milan.bin',
      '--product',
      'milan',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
      '--json',
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      verified: true,
      product: 'Milan',
      signer: 'VCEK',
      keySource: 'kds',
      reportVersion: 2,
    });
    expect(j.reportedTcb).toEqual({ bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(j.revocation.checked).toBe(false);
    expect(requests).toEqual([
      `/vcek/v1/Milan/${trusteeHwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`,
      '/vcek/v1/Milan/crl',
    ]);
  });

  it('uses the offline VCEK store and the cache', async () => {
    const store = path.join(dir, 'store');
    mkdirSync(store, { recursive: true });
    copyFileSync(path.join(dir, 'milan-vcek.der'), path.join(store, 'host-a.der'));
    const r = await cli(
      '--report',
      'milan.bin',
      '--product',
      'Milan',
      '--vcek-dir',
      'store',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).keySource).toBe('offline');
    const c1 = await cli(
      '--report',
      'milan.bin',
      '--product',
      'milan',
      '--cache-dir',
      'cache',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
      '--json',
    );
    const c2 = await cli(
      '--report',
      'milan.bin',
      '--product',
      'milan',
      '--cache-dir',
      'cache',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
      '--json',
    );
    expect([JSON.parse(c1.out).keySource, JSON.parse(c2.out).keySource]).toEqual(['kds', 'cache']);
  });

  it('the VLEK report: verified with --now 2025-06-01, refused today (expired), exit 3', async () => {
    const ok = await cli(
      '--report',
      'vlek.bin',
      '--vlek',
      'vlek.der',
      '--now',
      '2025-06-01T00:00:00Z',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    );
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^verified: Milan\n/);
    expect(ok.out).toContain('signed by the VLEK');
    const today = await cli(
      '--report',
      'vlek.bin',
      '--vlek',
      'vlek.der',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    );
    expect(today.code).toBe(3);
    expect(today.err).toMatch(
      /not verified: the VLEK expired at 2025-12-10T22:14:21.000Z .*\(cert-expired\)\n$/,
    );
  });

  it('a tampered report: exit 3 with the reason', async () => {
    const r = await cli(
      '--report',
      'tampered.bin',
      '--vcek',
      'milan-vcek.der',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
      '--json',
    );
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out)).toMatchObject({
      verified: false,
      stage: 'verification',
      code: 'bad-signature',
    });
    expect(r.err).toBe(
      "sev-attest snp verify-report: not verified: the report's signature does not verify with the VCEK (bad-signature)\n",
    );
  });

  it("another report's VCEK: exit 3 (hwid mismatch)", async () => {
    const r = await cli(
      '--report',
      'virtee.hex',
      '--vcek',
      'milan-vcek.der',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    );
    expect(r.code).toBe(3);
    expect(r.err).toContain('(hwid-mismatch)');
  });

  it('a revocation list not signed by the pinned ARK: exit 3', async () => {
    const r = await cli('--report', 'milan.bin', '--vcek', 'milan-vcek.der', '--crl', 'foreign.crl');
    expect(r.code).toBe(3);
    expect(r.err).toContain('the Milan CRL: not issued by ARK-Milan (crl-invalid)');
  });

  it('key server outage: exit 5 for the CRL (unless allowed) and for the VCEK', async () => {
    const crl = await cli('--report', 'milan.bin', '--vcek', 'milan-vcek.der', '--kds-url', outageUrl);
    expect(crl.code).toBe(5);
    expect(crl.err).toMatch(
      /key server: AMD KDS .* did not deliver the Milan CRL after 4 attempt\(s\): HTTP 503 \(kds-unavailable\)/,
    );
    expect(crl.err).toContain('--allow-missing-crl');
    const allowed = await cli(
      '--report',
      'milan.bin',
      '--vcek',
      'milan-vcek.der',
      '--kds-url',
      outageUrl,
      '--allow-missing-crl',
    );
    expect(allowed.code).toBe(0);
    expect(allowed.out).toMatch(/revocation: NOT checked \(--allow-missing-crl\): AMD KDS .*HTTP 503/);
    const vcek = await cli(
      '--report',
      'milan.bin',
      '--product',
      'milan',
      '--kds-url',
      outageUrl,
      '--allow-missing-crl',
    );
    expect(vcek.code).toBe(5);
  });

  it('no CRL on the key server (404) without --allow-missing-crl: exit 3, and no VCEK for the chip: exit 3', async () => {
    const r = await cli('--report', 'milan.bin', '--vcek', 'milan-vcek.der', '--kds-url', kdsUrl);
    expect(r.code).toBe(3);
    expect(r.err).toContain('(kds-not-found)');
    const v = await cli(
      '--report',
      'virtee.hex',
      '--product',
      'milan',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    );
    expect(v.code).toBe(3);
    expect(v.err).toMatch(
      /does not have the Milan VCEK for this chip and TCB \(HTTP 404\) \(kds-not-found\)/,
    );
  });

  it('expectations: measurement and report_data; a difference exits 4 naming expected and reported', async () => {
    const j = JSON.parse(
      (
        await cli(
          '--report',
          'milan.bin',
          '--vcek',
          'milan-vcek.der',
          '--kds-url',
          kdsUrl,
          '--allow-missing-crl',
          '--json',
        )
      ).out,
    );
    const base = [
      '--report',
      'milan.bin',
      '--vcek',
      'milan-vcek.der',
      '--kds-url',
      kdsUrl,
      '--allow-missing-crl',
    ];
    const ok = await cli(
      ...base,
      '--expect-measurement',
      j.measurement,
      '--expect-report-data',
      j.reportData,
    );
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('expectations: met');
    const bad = await cli(...base, '--expect-measurement', '00'.repeat(48));
    expect(bad.code).toBe(4);
    expect(bad.err).toContain(
      `expectation not met: measurement: expected one of 1 allowed measurement(s), reported measurement ${j.measurement}`,
    );
    const rd = await cli(...base, '--expect-report-data', 'ff', '--json');
    expect(rd.code).toBe(4);
    expect(JSON.parse(rd.out).refusals[0]).toMatchObject({
      field: 'report_data',
      expected: 'ff' + '00'.repeat(63),
    });
  });

  it('usage errors exit 2', async () => {
    expect((await cli()).code).toBe(2);
    expect((await cli('--report', 'short.bin', '--vcek', 'milan-vcek.der')).err).toMatch(
      /expected 1184 bytes raw or 2368 hex digits/,
    );
    expect((await cli('--report', 'milan.bin', '--now', 'yesterday')).code).toBe(2);
    expect((await cli('--report', 'milan.bin', '--product', 'rome')).err).toContain(
      "unknown SNP product 'rome'",
    );
    expect((await cli('--report', 'milan.bin', '--expect-measurement', 'abc')).code).toBe(2);
    const vlek = await cli('--report', 'vlek.bin');
    expect(vlek.code).toBe(2);
    expect(vlek.err).toContain('give --vlek FILE');
    const v2 = await cli('--report', 'milan.bin');
    expect(v2.code).toBe(2);
    expect(v2.err).toContain('give --product or --vcek');
    expect((await cli('--report', 'milan.bin', '--vcek', 'x', '--vlek', 'y')).code).toBe(2);
    expect((await cli('--report', 'missing.bin')).code).toBe(2);
  });

  it('--help documents the exit codes; the dispatcher lists verify-report', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    let list = '';
    const quiet = { out: (t: string) => (list += t), err: () => undefined, env: {}, cwd: dir };
    expect(await runCli(['snp', '--help'], quiet)).toBe(0);
    expect(list).toContain('verify-report    verify an SEV-SNP attestation report');
    expect(r.out).toMatch(
      /Exit status:\n {2}0 {2}verified[\s\S]*\n {2}2 {2}usage[\s\S]*\n {2}3 {2}verification failed[\s\S]*\n {2}4 {2}[\s\S]*\n {2}5 {2}the key server/,
    );
    let err = '';
    const io = { out: () => undefined, err: (t: string) => (err += t), env: {}, cwd: dir };
    expect(await runCli(['snp', 'nope'], io)).toBe(2);
    expect(err).toContain("unknown subcommand 'nope'");
  });
});
