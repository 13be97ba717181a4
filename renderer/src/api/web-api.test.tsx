// @vitest-environment jsdom
/**
 * The browser bridge's upload over a stand-in XMLHttpRequest: the file's name travels in the query, a
 * refused upload surfaces the service's own code and message (413 payload-too-large), a broken connection
 * says so, and upload progress is reported at most every UPLOAD_PROGRESS_MS.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { apiErrorOf, type ArtifactProgress } from '../../../app/contract/ipc';
import { createWebApi, UPLOAD_PROGRESS_MS } from './web-api';

type Script = (xhr: FakeXhr) => void;

class FakeXhr {
  static script: Script = () => {};
  static last: FakeXhr | undefined;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  withCredentials = false;
  status = 0;
  responseText = '';
  body: unknown;
  upload: { onprogress: ((e: { loaded: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.body = body;
    FakeXhr.last = this;
    FakeXhr.script(this);
  }
  abort() {
    this.onabort?.();
  }
}

function apiWith(script: Script) {
  FakeXhr.script = script;
  return createWebApi({
    baseUrl: 'http://127.0.0.1:9',
    XMLHttpRequest: FakeXhr as unknown as typeof XMLHttpRequest,
    fetch: (() => Promise.reject(new Error('no fetch in this test'))) as typeof fetch,
  });
}

const file = () => new File([new Uint8Array(1000)], 'initrd.img-6.8 (sev).img');

afterEach(() => vi.useRealTimers());

describe('web API uploads', () => {
  it("sends the file with its name and resolves with the service's answer", async () => {
    const api = apiWith((x) => {
      x.status = 200;
      x.responseText = JSON.stringify({
        ok: true,
        value: { sha256: 'a'.repeat(64), size: 1000, name: 'initrd.img-6.8 (sev).img', importedAt: 'now' },
      });
      x.onload?.();
    });
    const f = file();
    const result = await api.artifacts.import({
      importId: 'imp-1',
      path: api.files.pathFor(f),
      kind: 'initrd',
    });
    expect(result.name).toBe('initrd.img-6.8 (sev).img');
    const url = new URL(FakeXhr.last!.url);
    expect(url.pathname).toBe('/ui/upload');
    expect(url.searchParams.get('name')).toBe('initrd.img-6.8 (sev).img');
    expect(url.searchParams.get('kind')).toBe('initrd');
    expect(FakeXhr.last!.method).toBe('PUT');
    expect(FakeXhr.last!.body).toBe(f);
  });

  it("a 413 refusal shows the service's code and message, not a connection failure", async () => {
    const message = 'artifacts are limited to 2 GiB (2147483648 bytes); this file has 3000000000 bytes';
    const api = apiWith((x) => {
      x.status = 413;
      x.responseText = JSON.stringify({ ok: false, error: 'payload-too-large', message });
      x.onload?.();
    });
    const progress: ArtifactProgress[] = [];
    api.artifacts.onProgress((p) => progress.push(p));
    const f = file();
    const err = await api.artifacts
      .import({ importId: 'imp-2', path: api.files.pathFor(f), kind: 'initrd' })
      .catch((e: unknown) => e);
    expect(apiErrorOf(err)).toEqual({ code: 'payload-too-large', message });
    expect(progress.at(-1)).toMatchObject({ importId: 'imp-2', phase: 'error', message });
  });

  it('a broken connection is reported as such', async () => {
    const api = apiWith((x) => x.onerror?.());
    const f = file();
    const err = await api.artifacts
      .import({ importId: 'imp-3', path: api.files.pathFor(f), kind: 'initrd' })
      .catch((e: unknown) => e);
    expect(apiErrorOf(err)).toMatchObject({
      code: 'unreachable',
      message: expect.stringContaining('broke off'),
    });
  });

  it('upload progress: at most one report per interval, and always the last one', async () => {
    let now = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const api = apiWith((x) => {
      for (let loaded = 10; loaded <= 1000; loaded += 10) {
        now += 5; // 100 browser events, 5 ms apart: 500 ms
        x.upload.onprogress?.({ loaded });
      }
      x.status = 200;
      x.responseText = JSON.stringify({
        ok: true,
        value: { sha256: 'b'.repeat(64), size: 1000, name: 'x', importedAt: 'now' },
      });
      x.onload?.();
    });
    const uploading: number[] = [];
    api.artifacts.onProgress((p) => {
      if (p.phase === 'uploading') uploading.push(p.bytes);
    });
    const f = file();
    await api.artifacts.import({ importId: 'imp-4', path: api.files.pathFor(f), kind: 'initrd' });
    expect(uploading.length).toBeLessThanOrEqual(500 / UPLOAD_PROGRESS_MS + 2);
    expect(uploading.length).toBeGreaterThanOrEqual(2);
    expect(uploading.at(-1)).toBe(1000);
  });
});

describe('web API calls', () => {
  it('drops trailing undefined arguments (JSON would send null, which the schemas refuse)', async () => {
    const bodies: unknown[] = [];
    const api = createWebApi({
      baseUrl: 'http://127.0.0.1:9',
      fetch: (async (_url: string, init: RequestInit) => {
        bodies.push(JSON.parse(String(init.body)));
        return new Response(JSON.stringify({ ok: true, value: {} }), { status: 200 });
      }) as unknown as typeof fetch,
    });
    await api.hostSetup.get('vm-1', undefined);
    await api.hostSetup.get('vm-1', { row: 0 } as never);
    expect(bodies).toEqual([['vm-1'], ['vm-1', { row: 0 }]]);
  });
});
