/**
 * `sev-attest serve` says at start-up what keeps its secrets: memory (nothing survives) or a keychain that
 * cannot be used right now (no D-Bus / Secret Service), which is a clear warning, never a disk fallback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { buildCliPackage, serveArgs, startServe, type StartedServe } from '../helpers/built-cli';
import { request, tmpDir } from '../helpers/listener-harness';

let entry: string;
const running: StartedServe[] = [];

beforeAll(() => {
  entry = buildCliPackage('sev-keychain-startup-').entry;
}, 120_000);

afterAll(async () => {
  for (const s of running) {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

async function stopped(s: StartedServe): Promise<void> {
  s.child.kill('SIGTERM');
  expect((await s.exited).code).toBe(0);
}

describe('serve start-up: where secrets live', () => {
  it('--secret-store memory says it keeps nothing', async () => {
    const s = await startServe(process.execPath, [entry, ...serveArgs(tmpDir('sev-mem-'), 'memory')]);
    running.push(s);
    expect(s.stderr()).toContain('secrets are kept in memory only and lost on exit');
    await stopped(s);
  });

  it('an unusable keychain is a clear start-up warning, and nothing secret is written to the data dir', async () => {
    const dataDir = tmpDir('sev-nokeyring-');
    const prev = process.env.DBUS_SESSION_BUS_ADDRESS;
    // A bus address that does not exist: keytar cannot reach any Secret Service.
    process.env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${join(dataDir, 'no-such-bus')}`;
    let s: StartedServe;
    try {
      s = await startServe(process.execPath, [entry, ...serveArgs(dataDir, 'keychain')], {
        timeoutMs: 40_000,
      });
    } finally {
      if (prev === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
      else process.env.DBUS_SESSION_BUS_ADDRESS = prev;
    }
    running.push(s);
    const deadline = Date.now() + 20_000;
    while (!/keychain is not usable/.test(s.stderr()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(s.stderr()).toMatch(/warning: the OS keychain is not usable.*--secret-store memory/);
    // Registering a secret is refused with the keychain's code; no file in the data dir holds it.
    const res = await request(s.url, 'PUT', '/v1/vm/kc1', {
      token: s.token,
      body: {
        name: 'kc1',
        scheme: 'amd-sev',
        policy: 1,
        'cpu-count': 1,
        'launch-digests': ['a'.repeat(64)],
        secrets: [{ type: 'luks-passphrase', passphrase: 'never-on-disk-4242' }],
      },
    });
    expect(res.status, res.text).toBe(503);
    expect(res.json.error).toBe('secret-store-unavailable');
    const files = fs.readdirSync(dataDir, { recursive: true }) as string[];
    for (const f of files) {
      const p = join(dataDir, f);
      if (fs.statSync(p).isFile()) expect(fs.readFileSync(p, 'latin1')).not.toContain('never-on-disk-4242');
    }
    await stopped(s);
  });
});
