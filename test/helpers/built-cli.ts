/**
 * The built CLI for tests that run it as a process: build it, copy it out of dist/ into a scratch package,
 * and start its `serve`, waiting for the lines it prints (port, owner-token-file).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { platform, tmpDir } from './listener-harness';

/**
 * Builds the CLI and copies dist/ into a scratch package (node_modules linked), so another engineer's
 * rebuild cannot remove it mid-test. Returns the package folder and the entry (the freshest of .mjs/.cjs).
 */
export function buildCliPackage(prefix: string): { pkgDir: string; entry: string } {
  const r = spawnSync(process.execPath, ['scripts/build-cli.mjs'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  // The freshest of the two bundle formats (the build may have moved from .cjs to .mjs).
  const built = ['sev-attest.mjs', 'sev-attest.cjs']
    .filter((f) => fs.existsSync(join('dist', f)))
    .sort((a, b) => fs.statSync(join('dist', b)).mtimeMs - fs.statSync(join('dist', a)).mtimeMs);
  expect(built.length, 'the build wrote no dist/sev-attest.{mjs,cjs}').toBeGreaterThan(0);
  const pkgDir = tmpDir(prefix);
  fs.cpSync('dist', join(pkgDir, 'dist'), { recursive: true });
  fs.symlinkSync(join(process.cwd(), 'node_modules'), join(pkgDir, 'node_modules'), 'dir');
  return { pkgDir, entry: join(pkgDir, 'dist', built[0]!) };
}

/** `serve` arguments on 127.0.0.1:0 that trust the simulated platform's ASK/ARK (written into dataDir). */
export function serveArgs(dataDir: string, store: 'memory' | 'keychain'): string[] {
  const askArk = join(dataDir, 'sim-ask-ark.cert');
  fs.writeFileSync(askArk, platform().askArk);
  return [
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    '--trust-ca',
    askArk,
    '--secret-store',
    store,
  ];
}

export interface StartedServe {
  child: ChildProcess;
  url: string;
  token: string;
  tokenFile: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `command args` (a `serve`, or a wrapper around one) without SEV_ATTEST_OWNER_TOKEN and waits up
 * to `timeoutMs` for its `trust` line; `detached` puts it in its own process group, killed whole if it
 * does not start.
 */
export async function startServe(
  command: string,
  args: string[],
  opts: { detached?: boolean; timeoutMs?: number } = {},
): Promise<StartedServe> {
  const env = { ...process.env };
  delete env.SEV_ATTEST_OWNER_TOKEN;
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (!/^trust /m.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      try {
        if (opts.detached) process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      throw new Error(`serve did not start: ${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = Number(/^port (\d+)$/m.exec(out)![1]);
  const tokenFile = /^owner-token-file (.+)$/m.exec(out)![1]!;
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    token: fs.readFileSync(tokenFile, 'utf8').trim(),
    tokenFile,
    stdout: () => out,
    stderr: () => err,
    exited,
  };
}
