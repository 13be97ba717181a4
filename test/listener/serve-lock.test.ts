/**
 * Issue 10 point 13 (and the owner-token length of point 10) with the built CLI as processes: a second
 * `serve` on the same data directory refuses to start with a clear message; after a kill -9 the stale
 * lock is detected and a new serve starts; a short SEV_ATTEST_OWNER_TOKEN is a usage error (exit 2).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage, serveArgs, startServe, type StartedServe } from '../helpers/built-cli';
import { request, tmpDir } from '../helpers/listener-harness';

let entry = '';
const running: StartedServe[] = [];
beforeAll(() => {
  entry = buildCliPackage('serve-lock-').entry;
}, 120_000);
afterAll(async () => {
  for (const s of running) {
    s.child.kill('SIGKILL');
    await s.exited;
  }
});

function runOnce(args: string[], env: Record<string, string> = {}) {
  const e = { ...process.env, ...env };
  if (!('SEV_ATTEST_OWNER_TOKEN' in env)) delete e.SEV_ATTEST_OWNER_TOKEN;
  return spawnSync(process.execPath, [entry, ...args], { env: e, encoding: 'utf8', timeout: 30_000 });
}

describe('one serve per data directory', () => {
  it('the second serve refuses; after kill -9 of the first, a new one starts (stale lock)', async () => {
    const dataDir = tmpDir('serve-lock-');
    const first = await startServe(process.execPath, [entry, ...serveArgs(dataDir, 'memory')]);
    running.push(first);
    expect(fs.readFileSync(join(dataDir, 'serve.lock'), 'utf8').trim()).toBe(String(first.child.pid));

    const second = runOnce(serveArgs(dataDir, 'memory'));
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(
      `another sev-attest serve (pid ${first.child.pid}) is using the data directory`,
    );
    expect(second.stderr).not.toMatch(/\n\s+at /);
    // The first one still serves.
    expect((await request(first.url, 'GET', '/v1/health', { token: first.token })).status).toBe(200);

    first.child.kill('SIGKILL');
    await first.exited;
    const third = await startServe(process.execPath, [entry, ...serveArgs(dataDir, 'memory')]);
    running.push(third);
    expect(fs.readFileSync(join(dataDir, 'serve.lock'), 'utf8').trim()).toBe(String(third.child.pid));
    third.child.kill('SIGTERM');
    expect((await third.exited).code).toBe(0);
    // A clean stop removes the lock.
    expect(fs.existsSync(join(dataDir, 'serve.lock'))).toBe(false);
  }, 60_000);

  it('SEV_ATTEST_OWNER_TOKEN shorter than 32 characters: usage error, exit 2, no stack trace', () => {
    const r = runOnce(serveArgs(tmpDir('serve-lock-'), 'memory'), { SEV_ATTEST_OWNER_TOKEN: 'x'.repeat(20) });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/SEV_ATTEST_OWNER_TOKEN must be at least 32 characters/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('--require-host-token without a host token: usage error, exit 2', () => {
    const r = runOnce([...serveArgs(tmpDir('serve-lock-'), 'memory'), '--require-host-token']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/host token is required/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
