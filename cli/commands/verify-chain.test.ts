import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../run';
import { forgeChain, type ForgedChain } from '../../test/sev/chain-forge-helper';
import { concat, toBase64 } from '../../app/sev/bytes';

const ROOT = process.cwd();
const FIX = path.join(ROOT, 'test/fixtures/platforms');
let dir: string;
let forged: ForgedChain;
let server: Server;
let kdsUrl: string;
let kdsRequests = 0;
const FORGED_CHIP_HEX = 'AB'.repeat(64);

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(['verify-chain', ...argv], {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
    cwd: dir,
  });
  return { code, out, err };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'verify-chain-'));
  for (const g of ['naples', 'rome']) {
    const rd = (n: string) => readFileSync(path.join(FIX, `${g}-real/${n}.cert`));
    writeFileSync(path.join(dir, `${g}-pdh.cert`), rd('pdh'));
    writeFileSync(path.join(dir, `${g}-chain.cert`), concat(rd('pek'), rd('oca'), rd('cek')));
  }
  // libvirt's base64 form, with a trailing newline as `virsh nodesevinfo` output saved to a file would have.
  writeFileSync(
    path.join(dir, 'rome-pdh.b64'),
    toBase64(readFileSync(path.join(FIX, 'rome-real/pdh.cert'))) + '\n',
  );
  const ex = path.join(FIX, 'exported-unsigned-cek');
  copyFileSync(path.join(ex, 'pdh.cert'), path.join(dir, 'ex-pdh.cert'));
  writeFileSync(path.join(dir, 'ex-chain.b64'), toBase64(readFileSync(path.join(ex, 'cert_chain.cert'))));
  copyFileSync(path.join(ex, 'getid_s0_out.txt'), path.join(dir, 'ex-cpuid.txt'));
  copyFileSync(path.join(FIX, 'rome-real/cek.cert'), path.join(dir, 'rome-cek.cert'));

  forged = forgeChain();
  writeFileSync(path.join(dir, 'f-pdh.cert'), forged.pdh);
  writeFileSync(path.join(dir, 'f-chain.cert'), forged.certChain);
  writeFileSync(path.join(dir, 'f-chain-unsigned.cert'), forged.certChainUnsignedCek);
  writeFileSync(path.join(dir, 'f-ask-ark.cert'), forged.root.askArk);

  server = createServer((req, res) => {
    kdsRequests++;
    if (req.url === `/cek/id/${FORGED_CHIP_HEX}`) {
      res.writeHead(200);
      res.end(Buffer.from(forged.signedCek));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kdsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('sev-attest verify-chain (runCli)', () => {
  it('trusts the real Rome chain (PDH as base64) and names the generation', async () => {
    const r = await cli('--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-chain.cert');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^trusted: rome\n/);
    expect(r.out).toContain('PDH firmware API 0.22');
    expect(r.err).toBe('');
  });

  it('--json for the real Naples chain', async () => {
    const r = await cli('--pdh', 'naples-pdh.cert', '--cert-chain', 'naples-chain.cert', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      trusted: true,
      anchor: { kind: 'amd', generation: 'naples' },
      generation: 'naples',
      api: '0.16',
      cekSource: 'chain',
    });
  });

  it('a mixed chain fails with the failing link named, exit 1', async () => {
    const r = await cli('--pdh', 'naples-pdh.cert', '--cert-chain', 'rome-chain.cert');
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(
      'sev-attest verify-chain: not trusted: PEK -> PDH: signature does not verify (bad-signature)\n',
    );
  });

  it('an unsigned-CEK export without --cek/--cpu-id: exit 3, platform links verified, signed CEK needed', async () => {
    const r = await cli('--pdh', 'ex-pdh.cert', '--cert-chain', 'ex-chain.b64');
    expect(r.code).toBe(3);
    expect(r.err).toContain('PEK -> PDH and OCA -> PEK verified');
    expect(r.err).toContain('ASK-signed CEK');
    expect(r.err).toContain('(cek-unsigned)');
    const j = await cli('--pdh', 'ex-pdh.cert', '--cert-chain', 'ex-chain.b64', '--json');
    expect(j.code).toBe(3);
    expect(JSON.parse(j.out)).toMatchObject({
      trusted: false,
      code: 'cek-unsigned',
      platformLinksVerified: true,
    });
  });

  it('every other real unsigned-CEK export: exit 3, PEK -> PDH and OCA -> PEK verified', async () => {
    const more = path.join(FIX, 'exported-unsigned-cek-more');
    const dirs = readdirSync(more);
    expect(dirs.length).toBeGreaterThanOrEqual(5);
    for (const d of dirs) {
      const j = await cli(
        '--pdh',
        path.join(more, d, 'pdh.cert'),
        '--cert-chain',
        path.join(more, d, 'cert_chain.cert'),
        '--json',
      );
      expect({ d, code: j.code }).toEqual({ d, code: 3 });
      expect(JSON.parse(j.out)).toMatchObject({
        trusted: false,
        code: 'cek-unsigned',
        platformLinksVerified: true,
      });
    }
  });

  it('an unsigned-CEK export with a CEK of another chip is rejected', async () => {
    const r = await cli('--pdh', 'ex-pdh.cert', '--cert-chain', 'ex-chain.b64', '--cek', 'rome-cek.cert');
    expect(r.code).toBe(1);
    expect(r.err).toContain("differs from the cert-chain's CEK");
  });

  it('an unsigned-CEK export whose key server has no CEK: exit 4 (kds-unavailable)', async () => {
    const before = kdsRequests;
    const r = await cli(
      '--pdh',
      'ex-pdh.cert',
      '--cert-chain',
      'ex-chain.b64',
      '--cpu-id',
      'ex-cpuid.txt',
      '--kds-url',
      kdsUrl,
    );
    expect(r.code).toBe(4);
    expect(r.err).toContain('has no CEK for this chip id (HTTP 404)');
    expect(kdsRequests).toBe(before + 1);
  });

  it('a forged chain is not trusted; with --trust-ca it is, labelled extra', async () => {
    const a = await cli('--pdh', 'f-pdh.cert', '--cert-chain', 'f-chain.cert');
    expect(a.code).toBe(1);
    expect(a.err).toContain('(chain-not-trusted)');
    const b = await cli(
      '--pdh',
      'f-pdh.cert',
      '--cert-chain',
      'f-chain.cert',
      '--trust-ca',
      'f-ask-ark.cert',
      '--json',
    );
    expect(b.code).toBe(0);
    const j = JSON.parse(b.out);
    expect(j.anchor).toMatchObject({ kind: 'extra', label: 'f-ask-ark.cert' });
    expect(j.generation).toBeNull();
  });

  it('downloads the signed CEK from the key server by chip id, and caches it', async () => {
    const before = kdsRequests;
    const args = [
      '--pdh',
      'f-pdh.cert',
      '--cert-chain',
      'f-chain-unsigned.cert',
      '--cpu-id',
      FORGED_CHIP_HEX.toLowerCase(),
      '--kds-url',
      kdsUrl,
      '--cek-cache',
      'cache',
      '--trust-ca',
      'f-ask-ark.cert',
      '--json',
    ];
    const r = await cli(...args);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ trusted: true, cekSource: 'kds', chipId: FORGED_CHIP_HEX });
    expect(readdirSync(path.join(dir, 'cache'))).toEqual([`${FORGED_CHIP_HEX}.cek`]);
    expect((await cli(...args)).code).toBe(0);
    expect(kdsRequests).toBe(before + 1);
  });

  it('bad arguments: clear message, exit 2, no stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [[], /--pdh FILE is required/],
      [['--pdh', 'rome-pdh.b64'], /--cert-chain FILE is required/],
      [
        ['--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-pdh.b64'],
        /--cert-chain .*expected 6252 bytes, raw or base64; got 2781 bytes \(2084 after base64 decoding\)/,
      ],
      [['--pdh', 'missing.cert', '--cert-chain', 'rome-chain.cert'], /ENOENT/],
      [['--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-chain.cert', '--bogus'], /Unknown option '--bogus'/],
      [
        ['--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-chain.cert', '--kds-url', 'http://x'],
        /--kds-url needs --cpu-id/,
      ],
      [
        ['--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-chain.cert', '--cpu-id', 'rome-pdh.b64'],
        /--cpu-id .*64-byte chip id/,
      ],
      [
        ['--pdh', 'rome-pdh.b64', '--cert-chain', 'rome-chain.cert', '--trust-ca', 'rome-pdh.b64'],
        /--trust-ca .*expected 1664 or 3200 bytes/,
      ],
    ];
    for (const [argv, msg] of cases) {
      const r = await cli(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });
});

describe('the built dist/sev-attest.mjs', () => {
  beforeAll(() => {
    execFileSync(process.execPath, ['scripts/build-cli.mjs'], { cwd: ROOT, stdio: 'pipe' });
  }, 120_000);

  const run = (...argv: string[]) =>
    spawnSync(process.execPath, [path.join(ROOT, 'dist/sev-attest.mjs'), 'verify-chain', ...argv], {
      cwd: dir,
      encoding: 'utf8',
    });

  it('verifies the real Rome chain and reports an unsigned export with exit 3', () => {
    const ok = run('--pdh', 'rome-pdh.cert', '--cert-chain', 'rome-chain.cert');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^trusted: rome/);
    const unsigned = run('--pdh', 'ex-pdh.cert', '--cert-chain', 'ex-chain.b64');
    expect(unsigned.status).toBe(3);
    expect(unsigned.stderr).toContain('PEK -> PDH and OCA -> PEK verified');
  });

  it('prints a clear usage error without a stack trace', () => {
    const r = run('--pdh');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^sev-attest verify-chain: .*--pdh/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Exit status: 0 trusted');
  });
});
