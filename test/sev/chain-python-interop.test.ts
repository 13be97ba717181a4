import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { forgeChain } from './chain-forge-helper';
import { splitCertChain } from '../../app/sev/chain';

// An independent verifier (python3-cryptography, Debian's /usr/bin/python3, parser written from the
// protocol doc) checks the chains our helper signs, so the byte order and padding we produce (and
// the simulated platform reuses) are not only self-consistent. The checker itself is first run on the
// real Rome chain, and must reject a tampered chain.
const PY = '/usr/bin/python3';
const SCRIPT = path.join(process.cwd(), 'test/sev/interop/sev_chain_check.py');
const FIX = path.join(process.cwd(), 'test/fixtures/platforms');
let dir: string;

function check(askArk: string, certs: string[]) {
  return spawnSync(PY, [SCRIPT, askArk, ...certs], { encoding: 'utf8' });
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'chain-py-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('python3-cryptography agrees', () => {
  it('on the real Rome chain under the Rome roots', () => {
    const rome = path.join(process.cwd(), 'assets/amd-roots/rome');
    const askArk = path.join(dir, 'rome-ask-ark.cert');
    writeFileSync(
      askArk,
      Buffer.concat([readFileSync(path.join(rome, 'ask.cert')), readFileSync(path.join(rome, 'ark.cert'))]),
    );
    const r = check(
      askArk,
      ['pdh', 'pek', 'oca', 'cek'].map((n) => path.join(FIX, 'rome-real', `${n}.cert`)),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(7);
  });

  it('on a chain signed by the forge helper, and rejects it with one flipped bit', () => {
    const f = forgeChain();
    const parts = splitCertChain(f.certChain);
    const files = { askArk: f.root.askArk, pdh: f.pdh, pek: parts.pek, oca: parts.oca, cek: parts.cek };
    for (const [k, v] of Object.entries(files)) writeFileSync(path.join(dir, k), v);
    const args = ['pdh', 'pek', 'oca', 'cek'].map((k) => path.join(dir, k));
    const ok = check(path.join(dir, 'askArk'), args);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('ok ASK -> CEK');
    expect(ok.stdout).toContain('ok PEK -> PDH');
    const bad = f.pdh.slice();
    bad[0x200]! ^= 0x04; // in the signed body (zero padding of the key field)
    writeFileSync(path.join(dir, 'pdh'), bad);
    const no = check(path.join(dir, 'askArk'), args);
    expect(no.status).not.toBe(0);
  });
});
