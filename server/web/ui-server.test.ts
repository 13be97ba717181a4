import http from 'node:http';
import { DomainError } from '../../app/errors';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INVOKE_CHANNELS, type InvokeHandlers } from '../../app/contract/ipc';
import { UiEventBus } from '../owner-api/event-bus';
import { MAX_UPLOAD_NAME, UiServer, UI_CSP, uploadName } from './ui-server';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  /** A body given as a list of chunks is written chunk by chunk (send it with transfer-encoding: chunked). */
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Buffer[] } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    if (Array.isArray(opts.body)) {
      for (const chunk of opts.body) req.write(chunk);
      req.end();
    } else req.end(opts.body);
  });
}

const OWNER_TOKEN = 'owner-token-for-tests-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'ui-server-'));
writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>SEV Attest</title>');
writeFileSync(path.join(tmpdir(), 'outside-renderer.txt'), 'secret');
const bus = new UiEventBus();
const handlers = Object.fromEntries(
  INVOKE_CHANNELS.map((c) => [c, vi.fn(async (...args: unknown[]) => ({ channel: c, args }))]),
) as unknown as InvokeHandlers;
const uploads: Array<{ meta: unknown; bytes: number }> = [];
const server = new UiServer({
  handlers,
  events: bus,
  rendererDir: dir,
  ownerToken: OWNER_TOKEN,
  maxUploadBytes: 1_000_000,
  importUpload: async (body, meta) => {
    let bytes = 0;
    for await (const c of body) {
      bytes += (c as Buffer).length;
      // What the store does past its limit on a body without a length: stop reading and refuse.
      if (bytes > 1_000_000) {
        throw new DomainError('payload-too-large', 'artifacts are limited to 976.6 KiB (1000000 bytes)');
      }
    }
    uploads.push({ meta, bytes });
    return { sha256: 'a'.repeat(64), size: bytes, name: meta.name, importedAt: new Date(0).toISOString() };
  },
});
let base = '';
let cookie = '';

beforeAll(async () => {
  base = await server.start();
  const res = await request(`${base}/ui/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
    body: `token=${OWNER_TOKEN}`,
  });
  expect(res.status).toBe(303);
  cookie = String(res.headers['set-cookie']?.[0]).split(';')[0]!;
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const apiHeaders = () => ({
  'content-type': 'application/json',
  'x-sev-attest-ui': '1',
  origin: base,
  cookie,
});

describe('UI server authentication', () => {
  it('refuses API calls and events without a session cookie', async () => {
    const res = await request(`${base}/ui/api/profiles:list`, {
      method: 'POST',
      headers: { ...apiHeaders(), cookie: '' },
      body: '[]',
    });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ ok: false, error: 'unauthorized' });
    expect((await request(`${base}/ui/events`)).status).toBe(401);
    expect((await request(`${base}/`)).status).toBe(303);
    expect(handlers['profiles:list']).not.toHaveBeenCalled();
  });

  it('exchanges the owner token for an HttpOnly SameSite=Strict cookie, and refuses a wrong one', async () => {
    const bad = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
      body: 'token=wrong',
    });
    expect(bad.status).toBe(401);
    // Only the sign-in form's CSRF cookie, never a session.
    expect((bad.headers['set-cookie'] ?? []).join(';')).not.toMatch(/sev_attest_ui=/);
    const good = await request(`${base}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
      body: `token=${encodeURIComponent(OWNER_TOKEN)}`,
    });
    const setCookie = String(good.headers['set-cookie']?.[0]);
    expect(setCookie).toMatch(/^sev_attest_ui=[A-Za-z0-9_-]{40,};/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
  });

  it('accepts a one-time login link exactly once', async () => {
    const link = server.createLoginUrl();
    const first = await request(link);
    expect(first.status).toBe(303);
    expect(first.headers['set-cookie']).toBeDefined();
    const second = await request(link);
    expect(second.status).toBe(401);
    // Only the sign-in form's CSRF cookie, never a session.
    expect((second.headers['set-cookie'] ?? []).join(';')).not.toMatch(/sev_attest_ui=/);
  });

  it('refuses a foreign Origin, a missing CSRF header and a foreign Host', async () => {
    const evil = await request(`${base}/ui/api/listener:tokens`, {
      method: 'POST',
      headers: { ...apiHeaders(), origin: 'https://evil.example' },
      body: '[]',
    });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).error).toBe('bad-origin');
    const noHeader = await request(`${base}/ui/api/listener:tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: base, cookie },
      body: '[]',
    });
    expect(noHeader.status).toBe(403);
    const rebinding = await request(`${base}/ui/api/listener:tokens`, {
      method: 'POST',
      headers: { ...apiHeaders(), host: 'evil.example' },
      body: '[]',
    });
    expect(rebinding.status).toBe(421);
    expect(handlers['listener:tokens']).not.toHaveBeenCalled();
  });
});

describe('UI server: no cross-origin access', () => {
  it('sends no CORS headers (a preflight gets no allowance) and refuses a cross-origin upload', async () => {
    const evil = 'https://evil.example';
    const replies = [
      await request(`${base}/ui/api/listener:tokens`, {
        method: 'OPTIONS',
        headers: {
          origin: evil,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'x-sev-attest-ui, content-type',
        },
      }),
      await request(`${base}/ui/api/profiles:list`, { method: 'POST', headers: apiHeaders(), body: '[]' }),
      await request(`${base}/ui/api/profiles:list`, {
        method: 'POST',
        headers: { ...apiHeaders(), origin: evil },
        body: '[]',
      }),
      await request(`${base}/`, { headers: { cookie, origin: evil } }),
      await request(`${base}/ui/login`, { headers: { origin: evil } }),
    ];
    for (const r of replies) {
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
    expect(replies[0]!.status).toBeGreaterThanOrEqual(400);
    const upload = await request(`${base}/ui/upload?importId=x1&kind=firmware&name=f`, {
      method: 'PUT',
      headers: { ...apiHeaders(), origin: evil, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(16),
    });
    expect(upload.status).toBe(403);
    expect(JSON.parse(upload.body).error).toBe('bad-origin');
    expect(uploads.some((u) => (u.meta as { importId: string }).importId === 'x1')).toBe(false);
  });
});

describe('UI server contract bridge', () => {
  it('calls a channel with arguments parsed by the contract schema', async () => {
    const res = await request(`${base}/ui/api/listener:configure`, {
      method: 'POST',
      headers: apiHeaders(),
      body: JSON.stringify([{ host: '127.0.0.1', port: 8470, tls: true }]),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      ok: true,
      value: {
        channel: 'listener:configure',
        args: [{ host: '127.0.0.1', port: 8470, tls: true, hostToken: 'keep' }],
      },
    });
  });

  it('rejects invalid arguments and unknown channels without calling a service', async () => {
    const bad = await request(`${base}/ui/api/approvals:decide`, {
      method: 'POST',
      headers: apiHeaders(),
      body: JSON.stringify(['a1', 'yes please']),
    });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ ok: false, error: 'bad-arguments' });
    expect(handlers['approvals:decide']).not.toHaveBeenCalled();
    const unknown = await request(`${base}/ui/api/fs:readFile`, {
      method: 'POST',
      headers: apiHeaders(),
      body: '[]',
    });
    expect(unknown.status).toBe(404);
    const notJson = await request(`${base}/ui/api/profiles:list`, {
      method: 'POST',
      headers: apiHeaders(),
      body: '{',
    });
    expect(notJson.status).toBe(400);
    const proto = await request(`${base}/ui/api/__proto__`, {
      method: 'POST',
      headers: apiHeaders(),
      body: '[]',
    });
    expect(proto.status).toBe(404);
  });

  it('delivers bus events as server-sent events', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${base}/ui/events`, { headers: { cookie } }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes(': connected')) {
            bus.emit('listener:changed', {
              state: 'running',
              host: '127.0.0.1',
              port: 8470,
              tls: false,
              hostTokenRequired: false,
            });
          }
          if (text.includes('\n\nevent: listener:changed')) {
            const frame = text.slice(text.indexOf('event: listener:changed'));
            if (frame.includes('\n\n')) {
              req.destroy();
              resolve(frame);
            }
          }
        });
      });
      req.on('error', reject);
    });
    expect(got).toMatch(/^event: listener:changed\ndata: \{"state":"running"/);
  });

  it('streams an upload to the artifact import', async () => {
    const res = await request(`${base}/ui/upload?importId=imp-1&kind=firmware&name=OVMF.fd`, {
      method: 'PUT',
      headers: { ...apiHeaders(), 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(100_000, 7),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ ok: true, value: { size: 100_000 } });
    expect(uploads[0]).toEqual({
      meta: { importId: 'imp-1', kind: 'firmware', name: 'OVMF.fd', size: 100_000 },
      bytes: 100_000,
    });
  });

  it('refuses an upload declared larger than the limit with 413 and the JSON reason, before reading it', async () => {
    const before = uploads.length;
    const res = await request(`${base}/ui/upload?importId=imp-2&kind=initrd&name=big.img`, {
      method: 'PUT',
      headers: { ...apiHeaders(), 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(1_000_001),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual({
      ok: false,
      error: 'payload-too-large',
      message: 'artifacts are limited to 976.6 KiB (1000000 bytes); this file has 1000001 bytes',
    });
    expect(uploads.length).toBe(before);
  });

  it("answers an upload that grows past the limit (no length) with 413 and the importer's message", async () => {
    // Chunked: the server only finds out while reading; it must still answer, not drop the socket.
    const reply = await request(`${base}/ui/upload?importId=imp-3&kind=initrd&name=stream.img`, {
      method: 'PUT',
      headers: {
        ...apiHeaders(),
        'content-type': 'application/octet-stream',
        'transfer-encoding': 'chunked',
      },
      body: Array.from({ length: 40 }, (_, i) => Buffer.alloc(64 * 1024, i)),
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toMatchObject({
      ok: false,
      error: 'payload-too-large',
      message: expect.stringContaining('limited to 976.6 KiB'),
    });
  });

  it('upload names: the base name, no control characters, at most 255 characters', () => {
    expect(uploadName('initrd.img-6.8.0')).toBe('initrd.img-6.8.0');
    expect(uploadName('C:\\fakepath\\OVMF.fd')).toBe('OVMF.fd');
    expect(uploadName('../../etc/passwd')).toBe('passwd');
    expect(uploadName('a\u0000b\nc\u2028')).toBe('abc');
    expect(uploadName('  ')).toBe('upload');
    expect(uploadName('..')).toBe('upload');
    expect(uploadName(null)).toBe('upload');
    expect(uploadName('é'.repeat(400))).toBe('é'.repeat(MAX_UPLOAD_NAME));
  });

  it('serves the renderer with a strict CSP and nothing outside its directory', async () => {
    const res = await request(`${base}/`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(res.body).toContain('SEV Attest');
    expect(res.headers['content-security-policy']).toBe(UI_CSP);
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    const escape = await request(`${base}/..%2Foutside-renderer.txt`, { headers: { cookie } });
    expect(escape.status).toBe(404);
  });
});
