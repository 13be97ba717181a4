/**
 * A throwaway PostgreSQL cluster for the integration tests of `serve --database` (no mock): initdb into a
 * temp dir, pg_ctl on a free loopback port with its socket in that dir, a generated password (scram on
 * TCP), removed on stop(). As root the cluster runs as the `postgres` user (PostgreSQL refuses root);
 * as a normal user it runs as that user. Debian's packages (scripts/setup-system.sh) put the binaries in
 * /usr/lib/postgresql/<major>/bin; PG_BIN overrides.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgCluster {
  /** postgres://USER:PASSWORD@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** A fresh, empty database in the cluster; its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (fast: open connections are cut) and starts it again on the same port. */
  restart(): void;
  /** Stops the server without removing it (mode fast); start() brings it back. */
  stopServer(): void;
  startServer(): void;
  /** Stops the server and removes the directory; safe to call twice. */
  stop(): void;
}

/** The directory with initdb and pg_ctl, or undefined when PostgreSQL is not installed. */
export function pgBinDir(): string | undefined {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const majors = fs
    .readdirSync(root)
    .filter((d) => fs.existsSync(join(root, d, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] ? join(root, majors[0], 'bin') : undefined;
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

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL program as the cluster's owner (postgres when we are root). */
function runPg(bin: string, args: string[]): string {
  const cmd = isRoot ? 'runuser' : bin;
  const argv = isRoot ? ['-u', 'postgres', '--', bin, ...args] : args;
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const live = new Set<PgCluster>();
let exitHookInstalled = false;

/** Starts a cluster; stop() it in afterAll (an exit hook stops any left running). */
export async function startPgCluster(opts: { fsync?: boolean } = {}): Promise<PgCluster> {
  const bin = pgBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: run scripts/setup-system.sh (Debian: postgresql)');
  const dir = fs.mkdtempSync(join(tmpdir(), 'sev-attest-pg-'));
  const data = join(dir, 'data');
  const user = 'sevattest';
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pw');
  fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (isRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  fs.chmodSync(dir, 0o700);
  runPg(join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    user,
    '--pwfile',
    pwfile,
    '--auth-host=scram-sha-256',
    '--auth-local=peer',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  fs.rmSync(pwfile, { force: true });
  const port = await freePort();
  const pgCtl = join(bin, 'pg_ctl');
  const options = [
    `-c listen_addresses=127.0.0.1`,
    `-p ${port}`,
    `-c unix_socket_directories=${dir}`,
    `-c max_connections=200`,
    ...(opts.fsync ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off']),
  ].join(' ');
  const startServer = (): void => {
    runPg(pgCtl, ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  };
  const stopServer = (mode: 'fast' | 'immediate' = 'fast'): void => {
    try {
      runPg(pgCtl, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    } catch {
      // Not running.
    }
  };
  startServer();
  const url = `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  let stopped = false;
  let dbCount = 0;
  const cluster: PgCluster = {
    url,
    port,
    dir,
    async createDatabase(name?: string): Promise<string> {
      const db = name ?? `t${process.pid}_${++dbCount}_${randomBytes(3).toString('hex')}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${db}"`);
      } finally {
        await client.end();
      }
      return url.replace(/\/postgres$/, `/${db}`);
    },
    restart(): void {
      stopServer('fast');
      startServer();
    },
    stopServer: () => stopServer('fast'),
    startServer,
    stop(): void {
      if (stopped) return;
      stopped = true;
      live.delete(cluster);
      stopServer('immediate');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(cluster);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of [...live]) c.stop();
    });
  }
  return cluster;
}
