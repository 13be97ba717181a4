import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chipIdHex, DiskCekCache, KdsClient, retryAfterMs } from './kds';
import { fromHex } from './bytes';
import { SevError } from './errors';

const FIX = path.join(process.cwd(), 'test/fixtures/platforms');
const signedCek = new Uint8Array(readFileSync(path.join(FIX, 'rome-real/cek.cert')));
const unsignedCek = new Uint8Array(
  readFileSync(path.join(FIX, 'exported-unsigned-cek/cert_chain.cert')),
).slice(2 * 2084);
const chipId = fromHex(readFileSync(path.join(FIX, 'exported-unsigned-cek/getid_s0_out.txt'), 'utf8'));
const HEX = chipIdHex(chipId);

/** What the stand-in KDS does for the next requests, in order; then it serves the CEK. */
type Step = (res: ServerResponse) => void;
let script: Step[] = [];
const requests: string[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const step = script.shift();
    if (step) return step(res);
    if (req.url === `/cek/id/${HEX}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from(signedCek));
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

function client(extra: Partial<ConstructorParameters<typeof KdsClient>[0]> = {}) {
  const sleeps: number[] = [];
  const c = new KdsClient({
    baseUrl: base,
    maxAttempts: 4,
    timeoutMs: 2000,
    backoffMs: 100,
    maxDelayMs: 5000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  return { c, sleeps };
}

async function kdsError(p: Promise<unknown>): Promise<SevError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SevError) return e;
    throw e;
  }
  throw new Error('expected a SevError');
}

describe('KdsClient against a local stand-in KDS', () => {
  it('uses upper-case hex of the 64-byte chip id in the path', () => {
    const { c } = client();
    expect(HEX).toMatch(/^[0-9A-F]{128}$/);
    expect(c.cekUrl(chipId)).toBe(`${base}/cek/id/${HEX}`);
    expect(new KdsClient().cekUrl(chipId)).toBe(`https://kdsintf.amd.com/cek/id/${HEX}`);
  });

  it('fetches the signed CEK', async () => {
    requests.length = 0;
    script = [];
    const { c, sleeps } = client();
    expect(await c.getCek(chipId)).toEqual(signedCek);
    expect(requests).toEqual([`/cek/id/${HEX}`]);
    expect(sleeps).toEqual([]);
  });

  it('retries 429 honouring Retry-After seconds, and 503 with an HTTP date, then succeeds', async () => {
    requests.length = 0;
    const now = Date.parse('2025-01-01T00:00:00Z');
    script = [
      (res) => {
        res.writeHead(429, { 'retry-after': '3' });
        res.end();
      },
      (res) => {
        res.writeHead(503, { 'retry-after': new Date(now + 2000).toUTCString() });
        res.end();
      },
    ];
    const { c, sleeps } = client({ now: () => now });
    expect(await c.getCek(chipId)).toEqual(signedCek);
    expect(sleeps).toEqual([3000, 2000]);
    expect(requests).toHaveLength(3);
  });

  it('caps a long Retry-After', async () => {
    script = [
      (res) => {
        res.writeHead(429, { 'retry-after': '86400' });
        res.end();
      },
    ];
    const { c, sleeps } = client();
    await c.getCek(chipId);
    expect(sleeps).toEqual([5000]);
  });

  it('gives up after maxAttempts of 500s with kds-unavailable and backs off exponentially', async () => {
    requests.length = 0;
    const fail: Step = (res) => {
      res.writeHead(500);
      res.end('oops');
    };
    script = [fail, fail, fail, fail];
    const { c, sleeps } = client();
    const e = await kdsError(c.getCek(chipId));
    expect(e.code).toBe('kds-unavailable');
    expect(e.message).toContain('after 4 attempt(s): HTTP 500');
    expect(requests).toHaveLength(4);
    expect(sleeps).toEqual([100, 200, 400]);
    script = [];
  });

  it('times out a slow answer and retries', async () => {
    requests.length = 0;
    script = [
      (res) => {
        res.writeHead(200);
        res.write(Buffer.from(signedCek.subarray(0, 10)));
        setTimeout(() => res.end(Buffer.from(signedCek.subarray(10))), 1500);
      },
    ];
    const { c, sleeps } = client({ timeoutMs: 300 });
    expect(await c.getCek(chipId)).toEqual(signedCek);
    expect(requests).toHaveLength(2);
    expect(sleeps).toEqual([100]);
  });

  it('network errors are retried and reported', async () => {
    const { c, sleeps } = client({ baseUrl: 'http://127.0.0.1:1', maxAttempts: 2 });
    const e = await kdsError(c.getCek(chipId));
    expect(e.code).toBe('kds-unavailable');
    expect(e.message).toMatch(/after 2 attempt\(s\): network error/);
    expect(sleeps).toEqual([100]);
  });

  it('rejects wrong sizes, unsigned CEKs and 404 without retrying (404: AMD does not know the chip)', async () => {
    for (const [body, status, msg, code] of [
      [new Uint8Array(100), 200, 'expected a 2084-byte CEK certificate, got 100 bytes', 'kds-unavailable'],
      [unsignedCek, 200, 'carries no ASK signature', 'kds-unavailable'],
      [new Uint8Array(0), 404, 'has no CEK for this chip id (HTTP 404)', 'cek-unknown-chip'],
    ] as const) {
      requests.length = 0;
      script = [
        (res) => {
          res.writeHead(status);
          res.end(Buffer.from(body));
        },
      ];
      const e = await kdsError(client().c.getCek(chipId));
      expect(e.code).toBe(code);
      expect(e.message).toContain(msg);
      expect(requests).toHaveLength(1);
    }
    script = [];
  });

  it('rejects a chip id that is not 64 bytes', async () => {
    expect((await kdsError(client().c.getCek(new Uint8Array(32)))).code).toBe('bad-length');
  });

  it('with a DiskCekCache, a second lookup makes no request; files are written atomically', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kds-cache-'));
    try {
      const cache = new DiskCekCache(path.join(dir, 'sub'));
      requests.length = 0;
      script = [];
      const a = await client({ cache }).c.getCek(chipId);
      const b = await client({ cache }).c.getCek(chipId);
      expect(a).toEqual(signedCek);
      expect(b).toEqual(signedCek);
      expect(requests).toHaveLength(1);
      expect(readdirSync(path.join(dir, 'sub'))).toEqual([`${HEX}.cek`]);
      // A damaged cache entry is fetched again and replaced.
      writeFileSync(path.join(dir, 'sub', `${HEX}.cek`), 'garbage');
      expect(await client({ cache }).c.getCek(chipId)).toEqual(signedCek);
      expect(requests).toHaveLength(2);
      expect(new Uint8Array(readFileSync(path.join(dir, 'sub', `${HEX}.cek`)))).toEqual(signedCek);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('retryAfterMs', () => {
  it('reads seconds and HTTP dates, ignores junk', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterMs('7', now)).toBe(7000);
    expect(retryAfterMs('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(retryAfterMs('Tue, 31 Dec 2024 00:00:10 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});
