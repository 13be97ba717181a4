/**
 * tunnel:status / tunnel:configure / tunnel:changed over a real service, with a stand-in for the ssh
 * program (it records its arguments and reports the remote forward as OpenSSH -v does): the tunnel
 * starts and stops from the UI, is stored in the settings, follows the listener to a new port, and
 * comes back on the next start. The real-sshd behaviour is test/ssh-tunnel.test.ts.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InvokeChannel, TunnelStatus } from '../../app/contract/ipc';
import { UiEventBus } from '../../server/owner-api/event-bus';
import { connectUiEvents } from '../../server/owner-api/handlers';
import { startHarness, tmpDir, type Harness } from '../helpers/listener-harness';
import { ipcClient, ownerHandlers } from '../helpers/ipc';

const dir = tmpDir('sev-fake-ssh-');
const fakeSsh = join(dir, 'ssh');
const argsLog = join(dir, 'args.log');

beforeAll(() => {
  fs.writeFileSync(
    fakeSsh,
    `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(argsLog)}, JSON.stringify(args) + '\\n');
const r = args[args.indexOf('-R') + 1];
const remote = r.split(':')[1];
process.stderr.write('debug1: remote forward success for: listen 127.0.0.1:' + remote + ', connect 127.0.0.1\\n');
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`,
    { mode: 0o755 },
  );
});

const open: Harness[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function wired(dataDir?: string) {
  const h = await startHarness({ sshPath: fakeSsh, ...(dataDir ? { dataDir } : {}) });
  open.push(h);
  const bus = new UiEventBus();
  const tunnelEvents: TunnelStatus[] = [];
  bus.subscribe((channel, payload) => {
    if (channel === 'tunnel:changed') tunnelEvents.push(payload as TunnelStatus);
  });
  connectUiEvents(h.svc, bus);
  const handlers = ownerHandlers(h.svc, { mode: 'desktop' });
  const call = async (channel: InvokeChannel, ...args: unknown[]) =>
    ipcClient(handlers).raw(channel, ...args);
  return { h, call, tunnelEvents };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The -R forward of the last ssh the stand-in saw. */
function lastForward(): string {
  const lines = fs.readFileSync(argsLog, 'utf8').trim().split('\n');
  const args = JSON.parse(lines.at(-1)!) as string[];
  return args[args.indexOf('-R') + 1]!;
}

describe('tunnel channels', () => {
  it('starts from the UI, reports up, follows the listener, stops, and is stored', async () => {
    const { h, call, tunnelEvents } = await wired();
    expect(await call('tunnel:status')).toEqual({ ok: true, value: { state: 'off' } });

    const r = await call('tunnel:configure', {
      enabled: true,
      target: 'owner@libvirt-host.example',
      sshPort: 2222,
      remotePort: 18470,
    });
    expect(r.ok).toBe(true);
    await until(() => tunnelEvents.some((e) => e.state === 'up'), 'tunnel up');
    const up = (await call('tunnel:status')) as { value: TunnelStatus };
    expect(up.value).toMatchObject({
      state: 'up',
      target: 'owner@libvirt-host.example:2222',
      remotePort: 18470,
    });
    expect(lastForward()).toBe(`127.0.0.1:18470:127.0.0.1:${h.svc.port}`);
    expect(h.svc.settings.get().tunnel).toEqual({
      enabled: true,
      target: 'owner@libvirt-host.example:2222',
      remotePort: 18470,
    });
    expect(h.svc.audit.list().some((e) => e.type === 'tunnel' && e.message?.startsWith('up') === true)).toBe(
      true,
    );

    // The listener moves: the tunnel is restarted towards the new port.
    const oldPort = h.svc.port;
    const moved = await call('listener:configure', { host: '127.0.0.1', port: 0, tls: false });
    expect(moved.ok).toBe(true);
    expect(h.svc.port).not.toBe(oldPort);
    await until(() => lastForward().endsWith(`:${h.svc.port}`), 'ssh towards the new port');
    await until(() => h.svc.tunnel.status().state === 'up', 'tunnel up again');

    const off = await call('tunnel:configure', {
      enabled: false,
      target: 'owner@libvirt-host.example',
      sshPort: 2222,
      remotePort: 18470,
    });
    expect(off).toEqual({ ok: true, value: { state: 'off' } });
    expect(tunnelEvents.at(-1)).toEqual({ state: 'off' });
    expect(h.svc.settings.get().tunnel.enabled).toBe(false);
  });

  it('a stored tunnel starts with the service', async () => {
    const dataDir = tmpDir();
    const first = await wired(dataDir);
    const identity = join(dataDir, 'tunnel_ed25519');
    fs.writeFileSync(identity, 'not a real key\n', { mode: 0o600 });
    await first.call('tunnel:configure', {
      enabled: true,
      target: 'owner@10.0.0.5',
      remotePort: 18471,
      identityFile: identity,
    });
    await open.pop()!.close();
    const second = await wired(dataDir);
    await until(() => second.h.svc.tunnel.status().state === 'up', 'stored tunnel up');
    expect(second.h.svc.tunnel.status()).toMatchObject({ target: 'owner@10.0.0.5', remotePort: 18471 });
    expect(lastForward()).toBe(`127.0.0.1:18471:127.0.0.1:${second.h.svc.port}`);
    // The restored tunnel uses the same key the owner configured.
    const args = JSON.parse(fs.readFileSync(argsLog, 'utf8').trim().split('\n').at(-1)!) as string[];
    expect(args[args.indexOf('-i') + 1]).toBe(identity);
  });

  it('refuses a target ssh would misread, leaving the running tunnel alone', async () => {
    const { h, call } = await wired();
    await call('tunnel:configure', { enabled: true, target: 'owner@10.0.0.6', remotePort: 18472 });
    await until(() => h.svc.tunnel.status().state === 'up', 'tunnel up');
    const bad = await call('tunnel:configure', {
      enabled: true,
      target: 'owner@-oProxyCommand',
      remotePort: 1,
    });
    expect(bad).toMatchObject({ ok: false, error: 'bad-arguments' });
    expect(h.svc.tunnel.status()).toMatchObject({ state: 'up', target: 'owner@10.0.0.6' });
    expect(h.svc.settings.get().tunnel.target).toBe('owner@10.0.0.6');
  });
});
