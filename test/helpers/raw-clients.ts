/**
 * Raw TCP clients in a child process (so /proc/self/fd of the test process counts only the server's
 * descriptors): each binds its own loopback source address (127.x.y.z), connects to 127.0.0.1, writes
 * `payload` and then neither reads nor closes, until the child is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

const SCRIPT = `
const net = require('node:net');
const [port, n, prefix, payload] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3], process.argv[4]];
const keep = [];
let done = 0;
for (let i = 0; i < n; i++) {
  const localAddress = prefix.split('.').length === 4 ? prefix : prefix.split('.').length === 3 ? prefix + '.' + (1 + (i % 250)) : prefix + '.' + (1 + (i % 50)) + '.' + (1 + Math.floor(i / 50));
  const s = net.connect({ host: '127.0.0.1', port, localAddress, allowHalfOpen: true });
  s.on('error', () => {});
  s.on('connect', () => {
    if (payload) s.write(payload);
    s.pause();
    if (++done === n) process.stdout.write('ready\\n');
  });
  s.on('close', () => { if (done < n && ++done === n) process.stdout.write('ready\\n'); });
  keep.push(s);
}
setInterval(() => {}, 1 << 30);
`;

export interface RawClients {
  child: ChildProcess;
  kill(): Promise<void>;
}

/** Opens `n` silent clients; `prefix` is 127.a.b.c (one address), 127.a.b (one /24) or 127.a (spread over 50 /24s). */
export async function openRawClients(
  port: number,
  n: number,
  prefix: string,
  payload = '',
): Promise<RawClients> {
  const child = spawn(process.execPath, ['-e', SCRIPT, String(port), String(n), prefix, payload], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.on('exit', () => reject(new Error('the raw clients exited early')));
  });
  return {
    child,
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/** Open descriptors of this process (or of `pid`). */
export function countFds(pid: number | 'self' = 'self'): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
