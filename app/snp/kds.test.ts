import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hwidHex, OfflineVcekStore, SnpKdsClient, tcbFileStem, tcbQuery, type SnpKdsOptions } from './kds';
import { parseReport } from './report';
import { decodeTcb } from './tcb';
import { SnpError } from './errors';
import { pinnedSnpRoots } from './roots';
import { chipId, makeCrl, makeKey, makeTestRoots } from '../../test/helpers/snp-pki';

const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports');
const vcekPath = path.join(FIX, 'trustee-milan/test-vcek.der');
const VCEK = readFileSync(vcekPath);
const report = parseReport(new Uint8Array(readFileSync(path.join(FIX, 'trustee-milan/test-report.bin'))));
const TCB = decodeTcb(report.reportedTcb, 'Milan');
const CHIP = report.chipId;
const HWID = Buffer.from(CHIP).toString('hex');

type Step = (res: ServerResponse) => void;
let script: Step[] = [];
const requests: string[] = [];
let server: Server;
let base: string;
let dir: string;
let crl: Buffer;

beforeAll(async () => {
  crl = makeCrl(makeTestRoots('Milan', 'kds'));
  const milan = pinnedSnpRoots('Milan');
  const pem = (d: Uint8Array) =>
    `-----BEGIN CERTIFICATE-----\n${Buffer.from(d).toString('base64')}\n-----END CERTIFICATE-----\n`;
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const step = script.shift();
    if (step) return step(res);
    const url = req.url ?? '';
    if (url === `/vcek/v1/Milan/${HWID}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' });
      res.end(VCEK);
    } else if (url === '/vcek/v1/Milan/cert_chain') {
      res.end(pem(milan.ask.der) + pem(milan.ark.der));
    } else if (url === '/vlek/v1/Milan/cert_chain') {
      res.end(pem(milan.asvk.der) + pem(milan.ark.der));
    } else if (url === '/vcek/v1/Milan/crl') {
      res.end(crl);
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  script = [];
  requests.length = 0;
  dir = mkdtempSync(path.join(tmpdir(), 'snp-kds-'));
  return () => rmSync(dir, { recursive: true, force: true });
});

function client(extra: SnpKdsOptions = {}) {
  const sleeps: number[] = [];
  const c = new SnpKdsClient({
    baseUrl: base,
    maxAttempts: 3,
    timeoutMs: 2000,
    backoffMs: 100,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  return { c, sleeps };
}

async function errorOf(p: Promise<unknown>): Promise<SnpError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SnpError) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

describe('URL forms', () => {
  it('Milan and Genoa: 64-byte hwid, four SPLs; Turin: 8-byte hwid and fmcSPL first', () => {
    const { c } = client();
    const chip = chipId(3);
    const tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
    expect(c.vcekUrl('Milan', chip, tcb)).toBe(
      `${base}/vcek/v1/Milan/${Buffer.from(chip).toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`,
    );
    expect(c.vcekUrl('Genoa', chip, tcb)).toMatch(/\/vcek\/v1\/Genoa\/[0-9a-f]{128}\?blSPL=3&/);
    const turin = { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 };
    expect(c.vcekUrl('Turin', chip, turin)).toBe(
      `${base}/vcek/v1/Turin/${Buffer.from(chip.subarray(0, 8)).toString('hex')}?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5`,
    );
    expect(hwidHex('Turin', chip)).toHaveLength(16);
    expect(tcbQuery('Turin', turin)).toBe('fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5');
    expect(tcbFileStem('Milan', tcb)).toBe('bl3-tee0-snp8-ucode115');
    expect(c.chainUrl('Genoa', 'vlek')).toBe(`${base}/vlek/v1/Genoa/cert_chain`);
    expect(c.crlUrl('Turin')).toBe(`${base}/vcek/v1/Turin/crl`);
    expect(new SnpKdsClient().crlUrl('Milan')).toBe('https://kdsintf.amd.com/vcek/v1/Milan/crl');
  });
});

describe('SnpKdsClient', () => {
  it('fetches the VCEK for the chip and TCB', async () => {
    const { c } = client();
    const r = await c.getVcek('Milan', CHIP, TCB);
    expect(r.source).toBe('kds');
    expect(Buffer.compare(r.der, VCEK)).toBe(0);
  });

  it('retries after 503 and 429, honouring Retry-After', async () => {
    script = [
      (res) => {
        res.writeHead(503, { 'retry-after': '2' });
        res.end();
      },
      (res) => {
        res.writeHead(429, { 'retry-after': '1' });
        res.end();
      },
    ];
    const { c, sleeps } = client();
    expect((await c.getVcek('Milan', CHIP, TCB)).source).toBe('kds');
    expect(sleeps).toEqual([2000, 1000]);
    expect(requests).toHaveLength(3);
  });

  it('distinguishes 404 (no such VCEK) from an outage', async () => {
    const { c } = client();
    const nf = await errorOf(c.getVcek('Milan', chipId(4), TCB));
    expect(nf.code).toBe('kds-not-found');
    expect(nf.message).toMatch(/HTTP 404/);
    expect(requests).toHaveLength(1); // a 404 is not retried

    script = [0, 1, 2].map(() => (res: ServerResponse) => {
      res.writeHead(502);
      res.end();
    });
    const down = await errorOf(client().c.getVcek('Milan', CHIP, TCB));
    expect(down.code).toBe('kds-unavailable');
    expect(down.message).toMatch(/after 3 attempt\(s\): HTTP 502/);

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = await errorOf(
      new SnpKdsClient({ baseUrl: `http://127.0.0.1:${closedPort}`, maxAttempts: 1 }).getCrl('Milan'),
    );
    expect(refused.code).toBe('kds-unavailable');
    expect(refused.message).toMatch(/network error: fetch failed \(ECONNREFUSED\)/);
  });

  it('refuses a 200 answer that is not the VCEK asked for, without retrying', async () => {
    script = [
      (res) => {
        res.end(Buffer.from('<html>maintenance</html>'));
      },
    ];
    const e = await errorOf(client().c.getVcek('Milan', CHIP, TCB));
    expect(e.code).toBe('kds-unavailable');
    expect(e.message).toMatch(/is not the Milan VCEK for this chip and TCB/);
    expect(requests).toHaveLength(1);
  });

  it('caches on disk: a second client makes no request', async () => {
    await client({ cacheDir: dir }).c.getVcek('Milan', CHIP, TCB);
    await client({ cacheDir: dir }).c.getCrl('Milan', new Date('2026-01-01T00:00:00Z'));
    await client({ cacheDir: dir }).c.getChain('Milan', 'vcek');
    expect(requests).toHaveLength(3);
    const again = client({ cacheDir: dir }).c;
    expect((await again.getVcek('Milan', CHIP, TCB)).source).toBe('cache');
    expect((await again.getCrl('Milan', new Date('2026-01-01T00:00:00Z'))).source).toBe('cache');
    expect((await again.getChain('Milan', 'vcek')).ark).toHaveLength(pinnedSnpRoots('Milan').ark.der.length);
    expect(requests).toHaveLength(3);
    // A CRL past its nextUpdate is fetched again.
    expect((await again.getCrl('Milan', new Date('2041-01-01T00:00:00Z'))).source).toBe('kds');
    expect(requests).toHaveLength(4);
  });

  it('fetches both chains as intermediate + ARK', async () => {
    const { c } = client();
    const vcekChain = await c.getChain('Milan', 'vcek');
    const vlekChain = await c.getChain('Milan', 'vlek');
    const roots = pinnedSnpRoots('Milan');
    expect(Buffer.compare(vcekChain.intermediate, roots.ask.der)).toBe(0);
    expect(Buffer.compare(vlekChain.intermediate, roots.asvk.der)).toBe(0);
    expect(Buffer.compare(vlekChain.ark, roots.ark.der)).toBe(0);
  });
});

describe('offline VCEK store', () => {
  it('finds <dir>/<Product>/<hwid>/<tcb>.der without the network', async () => {
    const store = new OfflineVcekStore(dir);
    const p = store.pathFor('Milan', CHIP, TCB);
    expect(path.relative(dir, p)).toBe(path.join('Milan', HWID, 'bl3-tee0-snp8-ucode115.der'));
    mkdirSync(path.dirname(p), { recursive: true });
    copyFileSync(vcekPath, p);
    const { c } = client({ baseUrl: 'http://127.0.0.1:1', offlineDir: dir });
    expect((await c.getVcek('Milan', CHIP, TCB)).source).toBe('offline');
  });

  it('finds a plain file by its hwid and TCB extensions, whatever its name', async () => {
    const roots = makeTestRoots('Milan', 'offline');
    const other = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: chipId(5) });
    writeFileSync(path.join(dir, 'a-other.der'), other.der);
    writeFileSync(path.join(dir, 'notes.txt'), 'not a certificate');
    mkdirSync(path.join(dir, 'nested'));
    writeFileSync(path.join(dir, 'nested', 'garbage.der'), Buffer.from([0x30, 0x01]));
    const pem = `-----BEGIN CERTIFICATE-----\n${VCEK.toString('base64')}\n-----END CERTIFICATE-----\n`;
    writeFileSync(path.join(dir, 'nested', 'my-host.pem'), pem);
    const store = new OfflineVcekStore(dir);
    const hit = await store.find('Milan', CHIP, TCB);
    expect(hit && Buffer.from(hit).toString('latin1')).toBe(pem);
    // Another TCB or chip is not matched.
    expect(await store.find('Milan', CHIP, { ...TCB, snp: 9 })).toBeUndefined();
    expect(await store.find('Milan', chipId(6), TCB)).toBeUndefined();
    // Not found offline: the client falls through to the key server.
    const { c } = client({ offlineDir: dir });
    expect((await c.getVcek('Milan', CHIP, { ...TCB })).source).toBe('offline');
    const miss = await errorOf(client({ offlineDir: dir }).c.getVcek('Milan', chipId(6), TCB));
    expect(miss.code).toBe('kds-not-found');
  });

  it('refuses to look up a masked chip id', async () => {
    const e = await errorOf(client().c.getVcek('Milan', new Uint8Array(64), TCB));
    expect(e.code).toBe('chip-id-masked');
    expect(requests).toHaveLength(0);
  });
});
