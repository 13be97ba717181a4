/**
 * listener:configure and listener:status through the contract handlers over a real service: the listener
 * drains and restarts with the new address/TLS/host token, the settings keep them across a restart, a
 * failed bind keeps the old listener, and a non-loopback bind needs an explicit confirmation.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventChannel, InvokeChannel, ListenerStatus } from '../../app/contract/ipc';
import { UiEventBus } from '../../server/owner-api/event-bus';
import { connectUiEvents } from '../../server/owner-api/handlers';
import { startHarness, request, tmpDir, OWNER_TOKEN, type Harness } from '../helpers/listener-harness';
import { ipcClient, ownerHandlers } from '../helpers/ipc';

const open: Harness[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function wired(dataDir?: string) {
  const h = await startHarness(dataDir ? { dataDir } : {});
  open.push(h);
  const bus = new UiEventBus();
  const events: Array<{ channel: EventChannel; payload: unknown }> = [];
  bus.subscribe((channel, payload) => events.push({ channel, payload }));
  connectUiEvents(h.svc, bus);
  const handlers = ownerHandlers(h.svc, { mode: 'browser' });
  const call = async (channel: InvokeChannel, ...args: unknown[]) =>
    ipcClient(handlers).raw(channel, ...args);
  return { h, events, call };
}

/** GET /v1/health over HTTPS, returning the server certificate's SHA-256 fingerprint. */
function httpsHealth(url: string): Promise<{ status: number; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${OWNER_TOKEN}` };
    const req = https.get(`${url}/v1/health`, { rejectUnauthorized: false, headers }, (res) => {
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint: cert.fingerprint256 }));
    });
    req.on('error', reject);
  });
}

function refused(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('listener:configure', () => {
  it('drains, restarts with TLS on a new port, emits listener:changed and persists the settings', async () => {
    const { h, events, call } = await wired();
    const before = (await call('listener:status')) as { ok: true; value: ListenerStatus };
    expect(before.value).toMatchObject({ state: 'running', tls: false, url: h.svc.url });
    const oldUrl = h.svc.url;

    const r = (await call('listener:configure', { host: '127.0.0.1', port: 0, tls: true })) as {
      ok: true;
      value: ListenerStatus;
    };
    expect(r.ok).toBe(true);
    expect(r.value.state).toBe('running');
    expect(r.value.tls).toBe(true);
    expect(r.value.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(r.value.tlsFingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(h.svc.url).toBe(r.value.url);
    expect(await refused(oldUrl)).toBe(true);
    // The fingerprint the owner sees is the certificate the listener serves (what a host pins).
    const health = await httpsHealth(r.value.url!);
    expect(health.status).toBe(200);
    expect(health.fingerprint).toBe(r.value.tlsFingerprint);

    const states = events
      .filter((e) => e.channel === 'listener:changed')
      .map((e) => (e.payload as ListenerStatus).state);
    expect(states).toEqual(['draining', 'starting', 'running']);
    expect(h.svc.settings.get().listener).toMatchObject({ host: '127.0.0.1', port: 0, tls: true });
    expect(
      h.svc.audit.list().some((e) => e.type === 'listener' && e.message === `listening on ${r.value.url}`),
    ).toBe(true);

    // A new service on the same data directory starts from the stored settings: TLS, same certificate.
    const dataDir = h.dataDir;
    await open.pop()!.close();
    const again = await startHarness({ dataDir, host: undefined, port: undefined });
    open.push(again);
    expect(again.svc.url).toMatch(/^https:/);
    expect(again.svc.tlsFingerprint).toBe(r.value.tlsFingerprint);
  });

  it('a port already in use keeps the old listener running and the settings unchanged', async () => {
    const { h, call } = await wired();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      const oldUrl = h.svc.url;
      const r = await call('listener:configure', { host: '127.0.0.1', port: busy, tls: false });
      expect(r).toMatchObject({ ok: false, error: 'listener-restart-failed' });
      expect((r as { message: string }).message).toContain(`127.0.0.1:${busy}`);
      expect(h.svc.url).toBe(oldUrl);
      const health = await request(oldUrl, 'GET', '/v1/health');
      expect(health.status).toBe(200);
      const status = (await call('listener:status')) as { value: ListenerStatus };
      expect(status.value.state).toBe('running');
      expect(status.value.error).toMatch(/could not listen/);
      expect(h.svc.settings.get().listener.port).not.toBe(busy);
    } finally {
      blocker.close();
    }
  });

  it('refuses a non-loopback bind unless confirmed', async () => {
    const { h, call } = await wired();
    const oldUrl = h.svc.url;
    const r = await call('listener:configure', { host: '0.0.0.0', port: 0, tls: false });
    expect(r).toMatchObject({ ok: false, error: 'non-loopback-not-confirmed' });
    expect(h.svc.url).toBe(oldUrl);
    expect((await request(oldUrl, 'GET', '/v1/health')).status).toBe(200);

    const ok = (await call('listener:configure', {
      host: '0.0.0.0',
      port: 0,
      tls: false,
      confirmNonLoopback: true,
    })) as { ok: true; value: ListenerStatus };
    expect(ok.ok).toBe(true);
    expect(ok.value.host).toBe('0.0.0.0');
    expect(h.svc.settings.get().listener.host).toBe('0.0.0.0');
  });

  it('generates a host token (kept in DIR/host-token, mode 0600), then requires none', async () => {
    const { h, call } = await wired();
    const gen = (await call('listener:configure', {
      host: '127.0.0.1',
      port: 0,
      tls: false,
      hostToken: 'generate',
    })) as { value: ListenerStatus };
    expect(gen.value.hostTokenRequired).toBe(true);
    const tokens = (await call('listener:tokens')) as { value: { ownerToken: string; hostToken: string } };
    expect(tokens.value.ownerToken).toBe(OWNER_TOKEN);
    expect(tokens.value.hostToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const file = join(h.dataDir, 'host-token');
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(tokens.value.hostToken);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Host routes now need it.
    const launch = (token: string | null) =>
      request(h.svc.url, 'POST', '/v1/launch', { body: {}, token, headers: {} });
    expect((await launch(null)).status).toBe(401);
    expect((await launch(tokens.value.hostToken)).status).toBe(400);

    const none = (await call('listener:configure', {
      host: '127.0.0.1',
      port: 0,
      tls: false,
      hostToken: 'none',
    })) as { value: ListenerStatus };
    expect(none.value.hostTokenRequired).toBe(false);
    expect(fs.existsSync(file)).toBe(false);
    expect((await launch(null)).status).toBe(400);
  });

  it('rejects bad arguments before the service sees them', async () => {
    const { call } = await wired();
    expect(await call('listener:configure', { host: '127.0.0.1', port: 70000, tls: false })).toMatchObject({
      ok: false,
      error: 'bad-arguments',
    });
  });
});

describe('first run', () => {
  it('is stored in the settings and survives a restart', async () => {
    const dir = tmpDir();
    const first = await wired(dir);
    expect(
      ((await first.call('app:info')) as { value: { firstRunComplete: boolean } }).value.firstRunComplete,
    ).toBe(false);
    expect(await first.call('app:completeFirstRun')).toEqual({ ok: true, value: undefined });
    await open.pop()!.close();
    const second = await wired(dir);
    expect(
      ((await second.call('app:info')) as { value: { firstRunComplete: boolean } }).value.firstRunComplete,
    ).toBe(true);
    expect(second.h.svc.settings.get().firstRunDone).toBe(true);
  });
});
