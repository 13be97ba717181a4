/**
 * Runs HAProxy (Debian's package) with the documented configuration, docs/scale-out/haproxy.cfg, bound to
 * a free loopback port and with its server lines pointed at the given replicas: the tests and the scale
 * bench exercise the file the docs tell owners to install.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HAPROXY_CFG = join(__dirname, '..', '..', 'docs', 'scale-out', 'haproxy.cfg');

export interface RunningHaproxy {
  url: string;
  port: number;
  /** The source-balanced port for SEV-SNP guests' KBS traffic. */
  kbsUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The documented configuration with the bind address and the server lines replaced. */
export function renderHaproxyConfig(text: string, port: number, backends: string[], kbsPort: number): string {
  const servers = backends
    .map((b, i) => `    server replica${i + 1} ${b} check inter 1s fall 2 rise 1`)
    .join('\n');
  const out = text
    .replace(/^(\s*)bind :8470$/m, `$1bind 127.0.0.1:${port}`)
    .replace(/^(\s*)bind :8471$/m, `$1bind 127.0.0.1:${kbsPort}`)
    .replace(/(^\s*server replica\d+ .*\n?)+/gm, servers + '\n');
  if (
    !out.includes(`bind 127.0.0.1:${port}`) ||
    !out.includes(`bind 127.0.0.1:${kbsPort}`) ||
    /10\.0\.0\./.test(out)
  ) {
    throw new Error(`${HAPROXY_CFG} no longer has the bind / server lines this helper rewrites`);
  }
  return out;
}

export async function startHaproxy(backends: string[]): Promise<RunningHaproxy> {
  const port = await freePort();
  const kbsPort = await freePort();
  const dir = fs.mkdtempSync(join(tmpdir(), 'sev-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, renderHaproxyConfig(fs.readFileSync(HAPROXY_CFG, 'utf8'), port, backends, kbsPort));
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`haproxy did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    kbsUrl: `http://127.0.0.1:${kbsPort}`,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
