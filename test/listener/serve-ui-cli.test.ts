/**
 * The built CLI as `sev-attest serve --ui`: the bundle (whatever its format, .cjs or .mjs with chunks) is
 * copied into a scratch package so the renderer is found by walking up to the package.json named
 * sev-attest; the printed one-time link signs in over real HTTP, channels answer, SIGTERM closes both
 * servers. Without a built renderer it refuses before binding anything.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import http from 'node:http';
import * as net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/listener-harness';
import { buildCliPackage } from '../helpers/built-cli';

let pkgDir = '';
let entry = '';

beforeAll(() => {
  ({ pkgDir, entry } = buildCliPackage('sev-ui-pkg-'));
  fs.writeFileSync(join(pkgDir, 'package.json'), JSON.stringify({ name: 'sev-attest', version: '9.8.7' }));
  fs.mkdirSync(join(pkgDir, 'out', 'renderer', 'assets'), { recursive: true });
  fs.writeFileSync(
    join(pkgDir, 'out', 'renderer', 'index.html'),
    '<!doctype html><title>SEV Attest UI</title>',
  );
}, 120_000);
afterAll(() => fs.rmSync(pkgDir, { recursive: true, force: true }));

function call(url: string, method: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>(
    (resolve, reject) => {
      const req = http.request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        );
      });
      req.on('error', reject);
      req.end(body);
    },
  );
}

function serveUi(args: string[]) {
  const dataDir = tmpDir('sev-ui-data-');
  const env = { ...process.env };
  delete env.SEV_ATTEST_OWNER_TOKEN;
  delete env.SEV_ATTEST_HOST_TOKEN;
  const child = spawn(
    process.execPath,
    [entry, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--secret-store', 'memory', ...args],
    { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpDir('sev-ui-cwd-') },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, dataDir, exited, out: () => out, err: () => err };
}

async function waitFor(s: ReturnType<typeof serveUi>, re: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = re.exec(s.out());
    if (m) return m;
    if (Date.now() > deadline || s.child.exitCode !== null)
      throw new Error(`no ${re} from serve --ui:\n${s.out()}\n${s.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portClosed(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname);
    sock.on('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.on('error', () => resolve(true));
  });
}

describe('built CLI: serve --ui', () => {
  it('prints a one-time sign-in link that works over HTTP; channels answer; SIGTERM closes both servers', async () => {
    const s = serveUi(['--ui']);
    try {
      // The link as e2e/serve-fixture.ts finds it, and the parseable lines.
      const login = (
        await waitFor(s, /^ui-login (http:\/\/127\.0\.0\.1:\d+\/ui\/login\?t=[A-Za-z0-9_-]+)$/m)
      )[1]!;
      const uiUrl = /^ui (http:\/\/127\.0\.0\.1:\d+)$/m.exec(s.out())![1]!;
      const listening = /^listening (\S+)$/m.exec(s.out())![1]!;
      expect(new URL(login).origin).toBe(uiUrl);
      expect(uiUrl).not.toBe(listening);

      const signIn = await call(login, 'GET', {});
      expect(signIn.status).toBe(303);
      const cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
      expect(cookie).toMatch(/^sev_attest_ui=/);
      expect((await call(login, 'GET', {})).status).toBe(401); // once only

      const page = await call(`${uiUrl}/`, 'GET', { cookie });
      expect(page.status).toBe(200);
      expect(page.text).toContain('SEV Attest UI');

      const headers = { 'content-type': 'application/json', 'x-sev-attest-ui': '1', origin: uiUrl, cookie };
      const info = JSON.parse((await call(`${uiUrl}/ui/api/app:info`, 'POST', headers, '[]')).text);
      expect(info).toMatchObject({
        ok: true,
        value: { mode: 'browser', version: '9.8.7', dataDir: s.dataDir },
      });
      const status = JSON.parse((await call(`${uiUrl}/ui/api/listener:status`, 'POST', headers, '[]')).text);
      expect(status).toMatchObject({ ok: true, value: { state: 'running', url: listening, tls: false } });
      expect(
        (await call(`${uiUrl}/ui/api/profiles:list`, 'POST', { ...headers, cookie: '' }, '[]')).status,
      ).toBe(401);

      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
      expect(await portClosed(uiUrl)).toBe(true);
      expect(await portClosed(listening)).toBe(true);
    } finally {
      if (s.child.exitCode === null) s.child.kill('SIGKILL');
      fs.rmSync(s.dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('--ui-port picks the UI port; --ui-port without --ui is a usage error', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const free = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const s = serveUi(['--ui', '--ui-port', String(free)]);
    try {
      await waitFor(s, new RegExp(`^ui-login http://127\\.0\\.0\\.1:${free}/ui/login\\?t=`, 'm'));
      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
    } finally {
      if (s.child.exitCode === null) s.child.kill('SIGKILL');
    }
    const bad = serveUi(['--ui-port', '1234']);
    expect(await bad.exited).toBe(2);
    expect(bad.err()).toMatch(/--ui-port goes with --ui/);
  }, 60_000);

  it('without the built renderer: a clear error, nothing started', async () => {
    fs.renameSync(join(pkgDir, 'out'), join(pkgDir, 'out-moved'));
    try {
      const s = serveUi(['--ui']);
      expect(await s.exited).toBe(1);
      expect(s.err()).toMatch(/out\/renderer\/index\.html is missing\): run npm run build first/);
      expect(s.out()).not.toMatch(/^listening /m);
    } finally {
      fs.renameSync(join(pkgDir, 'out-moved'), join(pkgDir, 'out'));
    }
  }, 30_000);
});
