/**
 * Checklist: "a strict CSP". The three policies (app:// header, the renderer's meta tag, the browser
 * bridge's header) allow only our own origin: no inline or eval'd script, no remote origins, no plugins,
 * no framing, no <base>. The app:// handler puts the header on every file it serves.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';

const { handlers, fetched } = vi.hoisted(() => ({
  handlers: new Map<string, (req: { url: string }) => Promise<Response>>(),
  fetched: [] as string[],
}));
vi.mock('electron', () => ({
  protocol: {
    registerSchemesAsPrivileged: vi.fn(),
    handle: (scheme: string, fn: (req: { url: string }) => Promise<Response>) => handlers.set(scheme, fn),
  },
  net: {
    fetch: async (url: string) => {
      fetched.push(url);
      return new Response('<!doctype html><title>x</title>', {
        headers: { 'content-type': 'text/html' },
      });
    },
  },
}));

const { APP_CSP, handleAppProtocol } = await import('./app-protocol');
const { UI_CSP } = await import('../../server/web/ui-server');

/** Directive name → its sources. */
function parseCsp(policy: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), sources);
  }
  return out;
}

function expectStrict(policy: string): void {
  const csp = parseCsp(policy);
  expect(csp.get('default-src')).toEqual(["'self'"]);
  expect(csp.get('script-src')).toEqual(["'self'"]);
  expect(csp.get('object-src')).toEqual(["'none'"]);
  expect(csp.get('base-uri')).toEqual(["'none'"]);
  expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
  for (const [name, sources] of csp) {
    for (const s of sources) {
      // Only keywords ('self', 'none') and data: images: no hosts, no schemes, no wildcards, no unsafe-*.
      const allowed = s === "'self'" || s === "'none'" || (name === 'img-src' && s === 'data:');
      expect(allowed, `${name} ${s}`).toBe(true);
    }
  }
}

describe('Content-Security-Policy', () => {
  it('the app:// policy, the renderer meta tag and the browser bridge policy are strict', () => {
    expectStrict(APP_CSP);
    expectStrict(UI_CSP);
    const html = readFileSync(path.resolve('renderer/index.html'), 'utf8');
    const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBe(APP_CSP);
    expectStrict(meta!);
  });

  it('the checker itself refuses inline script, remote origins and wildcards', () => {
    for (const bad of [
      APP_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'"),
      APP_CSP.replace("connect-src 'self'", "connect-src 'self' https://evil.example"),
      APP_CSP.replace("img-src 'self' data:", "img-src 'self' *"),
      APP_CSP.replace("object-src 'none'", ''),
    ]) {
      expect(() => expectStrict(bad)).toThrow();
    }
  });

  it('app:// answers every file with the CSP header and nosniff; nothing outside the renderer', async () => {
    const root = path.resolve('/app/out/renderer');
    handleAppProtocol(root);
    const handler = handlers.get('app')!;
    const res = await handler({ url: 'app://sev-attest/index.html' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(APP_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(fetched.at(-1)).toBe(`file://${path.join(root, 'index.html')}`);
    const before = fetched.length;
    expect((await handler({ url: 'app://sev-attest/..%2F..%2Fetc%2Fpasswd' })).status).toBe(404);
    expect((await handler({ url: 'app://elsewhere/index.html' })).status).toBe(404);
    expect(fetched.length).toBe(before);
  });
});
