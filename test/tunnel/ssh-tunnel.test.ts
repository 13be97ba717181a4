/**
 * The SSH reverse tunnel against a real OpenSSH server: sshd started by the test on a loopback port
 * with a generated host key and an authorized key. `sev-attest serve --tunnel` (the built CLI) makes the
 * listener reachable at 127.0.0.1:REMOTE on the "host" side; killing sshd shows the tunnel down, and it
 * comes back when sshd returns on the same port. Password-only servers and unknown host keys end in a
 * clear error state, never a prompt or a hang.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSshTarget, SshTunnel, type TunnelStatus } from '../../server/services/ssh-tunnel';

const ROOT = process.cwd();
const SSHD = '/usr/sbin/sshd';
const tmp = fs.mkdtempSync(join(os.tmpdir(), 'sev-tunnel-'));
const OWNER = 'tunnel-test-owner-token-0123456789';
// The ssh client must not read the user's ~/.ssh or agent: only what the test gives it.
const clientEnv = { ...process.env, HOME: tmp, SSH_AUTH_SOCK: '' };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

const keygen = (file: string) =>
  expect(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]).status).toBe(0);

function sshdConfig(name: string, port: number, extra: string): string {
  const file = join(tmp, `${name}.conf`);
  fs.writeFileSync(
    file,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(tmp, 'host_key')}`,
      'PidFile none',
      `AuthorizedKeysFile ${join(tmp, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
      extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** Every descendant pid of `pid` (sshd forks one child per connection, which calls setsid). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

async function startSshd(config: string, port: number): Promise<ChildProcess> {
  const p = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return p;
    if (p.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Kills sshd and the per-connection children it forked (all started by this test). */
function killSshd(p: ChildProcess): Promise<void> {
  const all = [...descendants(p.pid!), p.pid!];
  const exited = new Promise<void>((r) => (p.exitCode !== null ? r() : p.once('exit', () => r())));
  for (const pid of all) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return exited;
}

function get(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${OWNER}` } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Resolves when `test` matches the accumulated text (or rejects after `ms`). */
function waitFor(read: () => string, test: RegExp, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (test.test(read())) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}; got:\n${read()}`));
      else setTimeout(tick, 50);
    };
    tick();
  });
}

let sshPort: number;
let knownHosts: string;
let sshd: ChildProcess | undefined;
let serve: ChildProcess | undefined;

beforeAll(async () => {
  // sshd refuses to start without its privilege separation directory (systemd creates it at boot).
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  keygen(join(tmp, 'host_key'));
  keygen(join(tmp, 'user_key'));
  fs.copyFileSync(join(tmp, 'user_key.pub'), join(tmp, 'authorized_keys'));
  sshPort = await freePort();
  const hostPub = fs.readFileSync(join(tmp, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  knownHosts = join(tmp, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${sshPort} ${hostPub}\n`);
  const build = spawnSync(process.execPath, ['scripts/build-cli.mjs'], { cwd: ROOT, encoding: 'utf8' });
  expect(build.status, build.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  serve?.kill('SIGKILL');
  if (sshd && sshd.exitCode === null) await killSshd(sshd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('parseSshTarget', () => {
  it('user@host[:port], [v6]:port; refuses options in disguise', () => {
    expect(parseSshTarget('root@host.example:2222')).toEqual({
      user: 'root',
      host: 'host.example',
      port: 2222,
    });
    expect(parseSshTarget('h')).toEqual({ user: undefined, host: 'h', port: undefined });
    expect(parseSshTarget('u@[::1]:22')).toEqual({ user: 'u', host: '::1', port: 22 });
    for (const bad of ['-oProxyCommand=x', 'u@h:0', 'u@h:99999', 'u@h/x', '']) {
      expect(() => parseSshTarget(bad)).toThrow(RangeError);
    }
  });
});

describe('sev-attest serve --tunnel against a real sshd', () => {
  it('a host-side request through 127.0.0.1:REMOTE reaches the listener; down when sshd dies, up when it returns', async () => {
    const config = sshdConfig('main', sshPort, 'PasswordAuthentication no');
    sshd = await startSshd(config, sshPort);
    const remote = await freePort();
    let out = '';
    serve = spawn(
      process.execPath,
      [
        join(ROOT, 'dist/sev-attest.mjs'),
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(tmp, 'serve'),
        '--secret-store',
        'memory',
        '--tunnel',
        `root@127.0.0.1:${sshPort}`,
        '--tunnel-remote-port',
        String(remote),
        '--tunnel-identity',
        join(tmp, 'user_key'),
        '--tunnel-known-hosts',
        knownHosts,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clientEnv, SEV_ATTEST_OWNER_TOKEN: OWNER } },
    );
    serve.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    serve.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => out, /^tunnel up /m, 20_000, 'tunnel up');
    const localPort = Number(/^port (\d+)$/m.exec(out)![1]);
    expect(remote).not.toBe(localPort);

    const h = await get(remote, '/v1/health');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text).status).toBe('ok');

    await killSshd(sshd);
    await waitFor(() => out, /^tunnel down: /m, 20_000, 'tunnel down');
    await expect(get(remote, '/v1/health')).rejects.toThrow();

    sshd = await startSshd(config, sshPort);
    const ups = () => (out.match(/^tunnel up /gm) ?? []).length;
    await waitFor(() => String(ups()), /^2$/, 30_000, 'tunnel up again');
    expect((await get(remote, '/v1/health')).status).toBe(200);

    const ev = await get(localPort, '/v1/events?type=tunnel');
    expect(ev.status).toBe(200);
    const states = ev.text
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          const j = JSON.parse(l) as { events?: { details?: { state?: string } }[] };
          return (j.events ?? []).map((e) => e.details?.state);
        } catch {
          return [];
        }
      });
    expect(states.join(' ')).toMatch(/up.*down.*up/);

    serve.kill('SIGTERM');
    await new Promise((r) => serve!.once('exit', r));
    expect(serve.exitCode).toBe(0);
    serve = undefined;
    await killSshd(sshd);
    sshd = undefined;
  }, 90_000);
});

describe('SshTunnel never prompts: clear errors', () => {
  const track = (t: SshTunnel) => {
    const seen: TunnelStatus[] = [];
    t.subscribe((s) => seen.push(s));
    return seen;
  };
  const until = async (seen: TunnelStatus[], state: string, ms: number) => {
    await waitFor(() => seen.map((s) => s.state).join(' '), new RegExp(`\\b${state}\\b`), ms, state);
    return seen.find((s) => s.state === state)!;
  };

  it('a password-only server: error state with the reason, no retry, ssh gone', async () => {
    const port = await freePort();
    fs.writeFileSync(
      join(tmp, 'known_pw'),
      `[127.0.0.1]:${port} ${fs.readFileSync(join(tmp, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`,
    );
    const server = await startSshd(
      sshdConfig('pw', port, 'PubkeyAuthentication no\nPasswordAuthentication yes'),
      port,
    );
    try {
      const t = new SshTunnel({
        target: `root@127.0.0.1:${port}`,
        remotePort: await freePort(),
        localPort: 9,
        identityFile: join(tmp, 'user_key'),
        knownHostsFile: join(tmp, 'known_pw'),
        env: clientEnv,
      });
      const seen = track(t);
      const started = Date.now();
      t.start();
      const err = await until(seen, 'error', 15_000);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(err.reason).toMatch(/Permission denied/);
      expect(err.reason).toMatch(/keys or an agent only/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(seen.filter((s) => s.state === 'connecting')).toHaveLength(1); // no retry loop
      await t.stop();
      expect(t.state.state).toBe('stopped');
    } finally {
      await killSshd(server);
    }
  }, 30_000);

  it('no usable key, and an unknown host key: error states naming the fix', async () => {
    const port = await freePort();
    const server = await startSshd(sshdConfig('nokey', port, 'PasswordAuthentication no'), port);
    try {
      fs.writeFileSync(
        join(tmp, 'known_nokey'),
        fs.readFileSync(knownHosts, 'utf8').replace(String(sshPort), String(port)),
      );
      const noKey = new SshTunnel({
        target: `root@127.0.0.1:${port}`,
        remotePort: await freePort(),
        localPort: 9,
        knownHostsFile: join(tmp, 'known_nokey'),
        env: clientEnv,
      });
      const seenA = track(noKey);
      noKey.start();
      expect((await until(seenA, 'error', 15_000)).reason).toMatch(/Permission denied/);
      await noKey.stop();

      fs.writeFileSync(join(tmp, 'known_empty'), '');
      const unknown = new SshTunnel({
        target: `root@127.0.0.1:${port}`,
        remotePort: await freePort(),
        localPort: 9,
        identityFile: join(tmp, 'user_key'),
        knownHostsFile: join(tmp, 'known_empty'),
        env: clientEnv,
      });
      const seenB = track(unknown);
      unknown.start();
      expect((await until(seenB, 'error', 15_000)).reason).toMatch(
        /Host key verification failed.*known_hosts/,
      );
      await unknown.stop();
    } finally {
      await killSshd(server);
    }
  }, 40_000);

  it('no sshd listening: down with ssh reason and a growing backoff, then stop() ends it', async () => {
    const port = await freePort();
    const t = new SshTunnel({
      target: `root@127.0.0.1:${port}`,
      remotePort: await freePort(),
      localPort: 9,
      identityFile: join(tmp, 'user_key'),
      knownHostsFile: knownHosts,
      initialBackoffMs: 100,
      env: clientEnv,
    });
    const seen = track(t);
    t.start();
    await waitFor(() => String(seen.filter((s) => s.state === 'down').length), /^[3-9]$/, 15_000, '3 downs');
    const downs = seen.filter((s) => s.state === 'down');
    expect(downs[0]!.reason).toMatch(/Connection refused/);
    expect(downs[1]!.retryInMs!).toBeGreaterThan(downs[0]!.retryInMs!);
    await t.stop();
    const n = seen.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.length).toBe(n);
    expect(t.state.state).toBe('stopped');
  }, 30_000);
});
