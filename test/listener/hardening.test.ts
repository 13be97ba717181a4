/**
 * Issue 10 hardening of the host-facing listener, through real sockets: AEAD-only TLS, rate limits that
 * many source addresses cannot add up around (client groups + a global budget), sockets destroyed after
 * a timeout (counted in /proc/self/fd), and a cap on open connections per client group.
 */
import * as http from 'node:http';
import * as tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientGroup } from '../../server/listener/rate-limit';
import { launchBody, OWNER_TOKEN, startHarness, type Harness } from '../helpers/listener-harness';
import { countFds, openRawClients, sleep } from '../helpers/raw-clients';

/** One request from a chosen loopback source address. */
function from(
  base: string,
  localAddress: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: { error?: string } }> {
  const url = new URL(path, base);
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        localAddress,
        agent: false,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': String(payload.length) }
            : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let json = {};
          try {
            json = JSON.parse(text) as object;
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('TLS: AEAD suites only', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ tls: true });
  });
  afterAll(() => h.close());

  const handshake = (opts: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: h.svc.port, rejectUnauthorized: false, ...opts },
        () => {
          const c = s.getCipher().name;
          s.destroy();
          resolve(c);
        },
      );
      s.on('error', reject);
    });

  it('a TLS 1.2 client offering only CBC-SHA1 suites fails the handshake', async () => {
    await expect(
      handshake({
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0',
      }),
    ).rejects.toThrow();
  });

  it('a TLS 1.2 client offering only CBC-SHA256/384 suites fails too', async () => {
    await expect(
      handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384' }),
    ).rejects.toThrow();
  });

  it('AES-GCM and ChaCha20-Poly1305 (TLS 1.2) and TLS 1.3 work', async () => {
    expect(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toBe(
      'ECDHE-ECDSA-AES128-GCM-SHA256',
    );
    expect(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).toBe(
      'ECDHE-ECDSA-CHACHA20-POLY1305',
    );
    expect(await handshake({ minVersion: 'TLSv1.3' })).toMatch(/^TLS_(AES|CHACHA20)/);
  });
});

describe('rate limits: client groups and a global budget', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      rateLimit: { capacity: 5, perSecond: 0.01, global: { capacity: 20, perSecond: 0.01 } },
      hostToken: 'host-token-for-hardening-tests-0123456789',
    });
  });
  afterAll(() => h.close());

  it('groups IPv4 by /24 and IPv6 by /64', () => {
    expect(clientGroup('192.0.2.17')).toBe('192.0.2.0/24');
    expect(clientGroup('::ffff:192.0.2.17')).toBe('192.0.2.0/24');
    expect(clientGroup('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientGroup('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientGroup('::1')).toBe('0:0:0:0::/64');
  });

  it('addresses of one /24 share one budget', async () => {
    const codes: number[] = [];
    for (let i = 1; i <= 8; i++)
      codes.push((await from(h.svc.url, `127.0.7.${i}`, 'POST', '/v1/launch')).status);
    expect(codes.slice(0, 5).every((c) => c !== 429)).toBe(true);
    expect(codes.slice(5)).toEqual([429, 429, 429]);
  });

  it('many /24s cannot add up past the global budget; the owner and a host with the token still pass', async () => {
    const codes: number[] = [];
    // 16 groups x 3 requests, each group within its own budget: 48 > the global 20 (5 went above).
    for (let g = 1; g <= 16; g++)
      for (let i = 0; i < 3; i++)
        codes.push(
          (await from(h.svc.url, `127.1.${g}.1`, 'POST', '/v1/launch', { body: launchBody() })).status,
        );
    const limited = codes.filter((c) => c === 429).length;
    expect(limited).toBeGreaterThanOrEqual(48 - 15);
    const r = await from(h.svc.url, '127.1.1.1', 'POST', '/v1/launch', { body: launchBody() });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toMatch(/^\d+$/);
    expect((await from(h.svc.url, '127.1.1.1', 'GET', '/v1/health', { token: OWNER_TOKEN })).status).toBe(
      200,
    );
    const withToken = await from(h.svc.url, '127.1.1.1', 'POST', '/v1/launch', {
      token: 'host-token-for-hardening-tests-0123456789',
      body: launchBody({ policy: 1 }),
    });
    expect(withToken.status).not.toBe(429);
  });
});

describe('sockets: destroyed after a timeout, capped per client group', () => {
  let h: Harness;
  const lines: string[] = [];
  let clients: Awaited<ReturnType<typeof openRawClients>> | undefined;
  beforeAll(async () => {
    h = await startHarness({
      limits: { headersTimeoutMs: 1000, requestTimeoutMs: 1500, maxConnectionsPerClient: 10 },
      log: (l) => lines.push(l),
    });
  });
  afterEach(async () => {
    await clients?.kill();
    clients = undefined;
  });
  afterAll(() => h.close());

  it('100 clients that send half a request and never read nor close hold no descriptor after the 408', async () => {
    await sleep(100);
    const before = countFds();
    // 100 clients over 10 /24s (10 each, within the per-client cap).
    clients = await openRawClients(
      h.svc.port,
      100,
      '127.3',
      'POST /v1/launch HTTP/1.1\r\nHost: 127.0.0.1\r\n',
    );
    // The server accepted them all (polled: accepting may lag the clients' connect on a busy machine).
    const accepted = Date.now() + 900;
    while (countFds() - before < 90 && Date.now() < accepted) await sleep(20);
    expect(countFds() - before).toBeGreaterThanOrEqual(90);
    const deadline = Date.now() + 5000;
    while (countFds() - before > 3 && Date.now() < deadline) await sleep(100);
    expect(countFds() - before).toBeLessThanOrEqual(3);
  });

  it('connections over the per-client cap are closed at once, with one log line for that client', async () => {
    await sleep(100);
    const before = countFds();
    lines.length = 0;
    clients = await openRawClients(h.svc.port, 40, '127.4.9');
    await sleep(200);
    expect(countFds() - before).toBeLessThanOrEqual(12);
    const refused = lines.filter((l) => l.includes('127.4.9.0/24'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).not.toMatch(/\n\s+at /);
  });
});
