/**
 * Issue 10 points 3 and 10, issue 11 point 1: the browser-UI server under hostile clients, through real
 * sockets. The sign-in form works with Chromium's `Origin: null` (form CSRF token, double submit) and
 * still refuses cross-site posts; wrong tokens back off (429 + Retry-After, said in plain words on a
 * page); slow or silent clients are timed out and their descriptors freed; connections per address are
 * capped; an aborted sign-in is one log line, no stack.
 */
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INVOKE_CHANNELS, type InvokeHandlers } from '../../app/contract/ipc';
import { UiEventBus } from '../owner-api/event-bus';
import { UiServer, UI_LOGIN_CSRF_COOKIE } from './ui-server';
import { countFds, openRawClients, sleep, type RawClients } from '../../test/helpers/raw-clients';

const OWNER_TOKEN = 'owner-token-for-hardening-tests-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'ui-hardening-'));
writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>SEV Attest</title>');

function makeServer(extra: Partial<ConstructorParameters<typeof UiServer>[0]> = {}) {
  const handlers = Object.fromEntries(
    INVOKE_CHANNELS.map((c) => [c, vi.fn(async () => null)]),
  ) as unknown as InvokeHandlers;
  return new UiServer({
    handlers,
    events: new UiEventBus(),
    rendererDir: dir,
    ownerToken: OWNER_TOKEN,
    importUpload: async () => {
      throw new Error('no uploads here');
    },
    ...extra,
  });
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** GET the sign-in page: its form CSRF token and the cookie that goes with it. */
async function signInPage(base: string): Promise<{ csrf: string; cookie: string; page: Reply }> {
  const page = await request(`${base}/ui/login`);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  const cookie = (page.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!).join('; ');
  return { csrf, cookie, page };
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('the sign-in form', () => {
  const server = makeServer();
  let base = '';
  beforeAll(async () => {
    base = await server.start();
  });
  afterAll(() => server.close());

  it('pasting the owner token as Chromium posts it (Origin: null) signs in', async () => {
    const { csrf, cookie, page } = await signInPage(base);
    expect(page.headers['referrer-policy']).toBe('same-origin');
    expect(cookie).toContain(`${UI_LOGIN_CSRF_COOKIE}=`);
    const r = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'null',
        'sec-fetch-site': 'same-origin',
        cookie,
      },
      body: form({ csrf, token: OWNER_TOKEN }),
    });
    expect(r.status).toBe(303);
    expect(r.headers['set-cookie']?.join(';')).toMatch(/sev_attest_ui=/);
  });

  it('a cross-site post, or one without the form token, is refused with a page (not JSON)', async () => {
    const { csrf, cookie } = await signInPage(base);
    const crossSite = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'null',
        'sec-fetch-site': 'cross-site',
        cookie,
      },
      body: form({ csrf, token: OWNER_TOKEN }),
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers['content-type']).toMatch(/^text\/html/);
    expect(crossSite.headers['set-cookie']?.join(';') ?? '').not.toMatch(/sev_attest_ui=/);
    const noToken = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'null' },
      body: form({ token: OWNER_TOKEN }),
    });
    expect(noToken.status).toBe(403);
    expect(noToken.headers['content-type']).toMatch(/^text\/html/);
    expect(noToken.body).toMatch(/reload the sign-in page/);
    const evil = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example', cookie },
      body: form({ csrf, token: OWNER_TOKEN }),
    });
    expect(evil.status).toBe(403);
  });

  it('a used sign-in link shows the form to paste the token instead', async () => {
    const link = server.createLoginUrl();
    expect((await request(link)).status).toBe(303);
    const again = await request(link);
    expect(again.status).toBe(401);
    expect(again.body).toMatch(/already used or has expired/);
    expect(again.body).toMatch(/name="csrf"/);
  });
});

describe('sign-in back-off', () => {
  it('300 wrong tokens from one client: 429 with Retry-After after 5, said in plain words', async () => {
    const server = makeServer();
    const base = await server.start();
    try {
      const statuses: number[] = [];
      let last: Reply | undefined;
      for (let i = 0; i < 300; i++) {
        last = await request(`${base}/ui/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
          body: form({ token: `wrong-${i}` }),
        });
        statuses.push(last.status);
      }
      // 5 free tries, then waits of 1, 2, 4 ... s: a try after a wait has passed is answered again.
      expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
      expect(statuses[5]).toBe(429);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(8);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(292);
      expect(Number(last!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(last!.headers['content-type']).toMatch(/^text\/html/);
      expect(last!.body).toMatch(
        /Too many wrong owner tokens were tried\. Wait \d+ seconds?, then try again\./,
      );
      // Even the right token waits (otherwise the back-off would not slow guessing).
      const right = await request(`${base}/ui/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
        body: form({ token: OWNER_TOKEN }),
      });
      expect(right.status).toBe(429);
    } finally {
      await server.close();
    }
  });

  it('overall: wrong tokens from many addresses make everyone wait; it passes, then the right token works', async () => {
    const server = makeServer({ signInBackoff: { overallFree: 20, maxWaitSeconds: 1, firstWaitSeconds: 1 } });
    const base = await server.start();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const r = await request(`${base}/ui/login`, {
          method: 'POST',
          localAddress: `127.13.0.${i + 1}`,
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
          body: form({ token: `wrong-${i}` }),
        });
        statuses.push(r.status);
      }
      expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
      expect(statuses.slice(20).filter((s) => s === 429).length).toBeGreaterThan(10);
      await sleep(1100);
      const right = await request(`${base}/ui/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
        body: form({ token: OWNER_TOKEN }),
      });
      expect(right.status).toBe(303);
    } finally {
      await server.close();
    }
  });
});

describe('slow and silent clients', () => {
  const lines: string[] = [];
  const server = makeServer({
    headersTimeoutMs: 1000,
    requestTimeoutMs: 1500,
    maxConnectionsPerAddress: 10,
    log: (l) => lines.push(l),
  });
  let port = 0;
  let clients: RawClients | undefined;
  beforeAll(async () => {
    port = Number(new URL(await server.start()).port);
  });
  afterEach(async () => {
    await clients?.kill();
    clients = undefined;
  });
  afterAll(() => server.close());

  it('sign-ins whose body never comes are cut off: no descriptor kept, one line each, no stack', async () => {
    await sleep(100);
    const before = countFds();
    lines.length = 0;
    clients = await openRawClients(
      port,
      40,
      '127.14',
      `POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://127.0.0.1:${port}\r\n` +
        'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=abc',
    );
    // The server accepted them all (polled: accepting may lag the clients' connect on a busy machine).
    const accepted = Date.now() + 900;
    while (countFds() - before < 35 && Date.now() < accepted) await sleep(20);
    expect(countFds() - before).toBeGreaterThanOrEqual(35);
    const deadline = Date.now() + 5000;
    while (countFds() - before > 3 && Date.now() < deadline) await sleep(100);
    expect(countFds() - before).toBeLessThanOrEqual(3);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toMatch(/\n\s+at /);
  });

  it('half-sent headers are timed out (408) and the socket destroyed', async () => {
    await sleep(100);
    const before = countFds();
    clients = await openRawClients(port, 40, '127.15', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const deadline = Date.now() + 5000;
    while (countFds() - before > 3 && Date.now() < deadline) await sleep(100);
    expect(countFds() - before).toBeLessThanOrEqual(3);
  });

  it('connections per address are capped, with one log line for that address', async () => {
    await sleep(100);
    const before = countFds();
    lines.length = 0;
    clients = await openRawClients(port, 30, '127.16.0.1');
    await sleep(200);
    expect(countFds() - before).toBeLessThanOrEqual(12);
    expect(lines.filter((l) => l.includes('127.16.0.1'))).toHaveLength(1);
  });
});
