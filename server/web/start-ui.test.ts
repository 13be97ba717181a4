import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../serve/serve';
import { startUi, type RunningUi } from './start-ui';

function call(url: string, method: string, headers: Record<string, string>, body?: string | Buffer) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; json: unknown }>(
    (resolve, reject) => {
      const req = http.request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      });
      req.on('error', reject);
      req.end(body);
    },
  );
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'start-ui-'));
const rendererDir = mkdtempSync(path.join(tmpdir(), 'start-ui-renderer-'));
writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>SEV Attest</title>');
let service: RunningService;
let ui: RunningUi;
let cookie = '';

beforeAll(async () => {
  service = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    secretStore: 'memory',
    ownerToken: 'o'.repeat(32),
  });
  ui = await startUi(service, {
    rendererDir,
    dataDir,
    version: '0.0.0-test',
    maxUploadBytes: 4 * 1024 * 1024,
  });
  const res = await call(ui.loginUrl, 'GET', {});
  expect(res.status).toBe(303);
  cookie = String(res.headers['set-cookie']?.[0]).split(';')[0]!;
});
afterAll(async () => {
  await ui?.close();
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(rendererDir, { recursive: true, force: true });
});

const headers = () => ({
  'content-type': 'application/json',
  'x-sev-attest-ui': '1',
  origin: ui.url,
  cookie,
});

describe('serve --ui over the real services', () => {
  it('answers contract calls from the running service', async () => {
    const profiles = await call(`${ui.url}/ui/api/profiles:list`, 'POST', headers(), '[]');
    expect(profiles.json).toEqual({ ok: true, value: [] });
    const tokens = await call(`${ui.url}/ui/api/listener:tokens`, 'POST', headers(), '[]');
    expect(tokens.json).toEqual({ ok: true, value: { ownerToken: 'o'.repeat(32), hostToken: null } });
    const info = (await call(`${ui.url}/ui/api/app:info`, 'POST', headers(), '[]')).json as {
      value: { mode: string; secretStore: { kind: string } };
    };
    expect(info.value.mode).toBe('browser');
    expect(info.value.secretStore.kind).toBe('memory');
    const missing = await call(`${ui.url}/ui/api/profiles:delete`, 'POST', headers(), '["nope"]');
    expect(missing.json).toMatchObject({ ok: false, error: 'unknown-vm' });
  });

  it('stores an uploaded artifact and refuses server-path imports', async () => {
    const bytes = Buffer.from('not really firmware');
    // Checked as what it is uploaded as: not a firmware image (no OVMF footer), so refused and not kept.
    const asFirmware = await call(
      `${ui.url}/ui/upload?importId=i0&kind=firmware&name=x.fd`,
      'PUT',
      headers(),
      bytes,
    );
    expect(asFirmware.json).toMatchObject({ ok: false, error: 'bad-format' });
    const up = await call(`${ui.url}/ui/upload?importId=i1&kind=initrd&name=x.img`, 'PUT', headers(), bytes);
    expect(up.json).toMatchObject({
      ok: true,
      value: {
        sha256: createHash('sha256').update('not really firmware').digest('hex'),
        size: bytes.length,
        name: 'x.img',
      },
    });
    const byPath = await call(
      `${ui.url}/ui/api/artifacts:import`,
      'POST',
      headers(),
      JSON.stringify([{ importId: 'i2', path: '/etc/passwd', kind: 'firmware' }]),
    );
    expect(byPath.json).toMatchObject({ ok: false, error: 'not-supported' });
  });

  it("keeps the upload's file name and kind: artifacts:list shows them, a restarted store too", async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 1, 0x5a);
    const q = new URLSearchParams({ importId: 'i3', kind: 'initrd', name: 'initrd.img-6.8.0-sev' });
    const up = await call(`${ui.url}/ui/upload?${q.toString()}`, 'PUT', headers(), bytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(up.json).toMatchObject({
      ok: true,
      value: { sha256, name: 'initrd.img-6.8.0-sev', kind: 'initrd' },
    });
    const list = (await call(`${ui.url}/ui/api/artifacts:list`, 'POST', headers(), '[]')).json as {
      value: Array<{ sha256: string; name: string; kind?: string }>;
    };
    expect(list.value.find((a) => a.sha256 === sha256)).toMatchObject({
      name: 'initrd.img-6.8.0-sev',
      kind: 'initrd',
    });
    expect(service.artifacts.info(sha256)).toMatchObject({ name: 'initrd.img-6.8.0-sev', kind: 'initrd' });
  });

  it('refuses an upload over the limit with 413 and the reason, storing nothing', async () => {
    const before = service.artifacts.list().length;
    const big = Buffer.alloc(4 * 1024 * 1024 + 1);
    const up = await call(`${ui.url}/ui/upload?importId=i4&kind=initrd&name=big.img`, 'PUT', headers(), big);
    expect(up.status).toBe(413);
    expect(up.json).toMatchObject({
      ok: false,
      error: 'payload-too-large',
      message: expect.stringContaining('artifacts are limited to 4 MiB (4194304 bytes)'),
    });
    expect(service.artifacts.list().length).toBe(before);
    expect(readdirSync(service.artifacts.dir).filter((n) => n.startsWith('tmp-'))).toEqual([]);
  });
});
