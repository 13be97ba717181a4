/**
 * `npm ci` where Electron's download host is unreachable (ELECTRON_MIRROR pointing at a closed port):
 * electron's own install.js fails there, and the postinstall wrapper turns that into a notice and exit 0,
 * so the install completes and `npm run app` uses the browser mode. CI's ELECTRON_SKIP_BINARY_DOWNLOAD=1
 * keeps skipping the download.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const electronDir = dirname(createRequire(import.meta.url).resolve('electron/package.json'));

/** A copy of the electron package without its binary, and an empty download cache. */
function scratchElectron(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'electron-pkg-'));
  for (const f of ['install.js', 'package.json', 'checksums.json'])
    copyFileSync(join(electronDir, f), join(dir, f));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_PATH: join(process.cwd(), 'node_modules'),
    ELECTRON_MIRROR: 'http://127.0.0.1:9/',
    electron_config_cache: mkdtempSync(join(tmpdir(), 'electron-cache-')),
    SEV_ATTEST_ELECTRON_DIR: dir,
  };
  delete env.ELECTRON_SKIP_BINARY_DOWNLOAD;
  return { dir, env };
}

describe('npm ci without a reachable Electron download host', () => {
  it("electron's install.js fails there on its own", () => {
    const { dir, env } = scratchElectron();
    const r = spawnSync(process.execPath, ['install.js'], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
  });

  it('the postinstall wrapper completes with a notice, and --strict (npm run electron:download) fails', () => {
    const { env } = scratchElectron();
    const r = spawnSync(process.execPath, ['scripts/electron-postinstall.mjs'], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/Electron's binary could not be downloaded/);
    expect(r.stderr).toMatch(/npm run app` starts the same UI in your browser/);
    const strict = spawnSync(process.execPath, ['scripts/electron-postinstall.mjs', '--strict'], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(strict.status).toBe(1);
  });

  it('ELECTRON_SKIP_BINARY_DOWNLOAD=1 (CI) skips it quietly', () => {
    const { env } = scratchElectron();
    const r = spawnSync(process.execPath, ['scripts/electron-postinstall.mjs'], {
      env: { ...env, ELECTRON_SKIP_BINARY_DOWNLOAD: '1' },
      encoding: 'utf8',
    });
    expect(r).toMatchObject({ status: 0, stderr: '' });
  });

  it("npm does not run electron's own postinstall; the project's wrapper runs instead", () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      allowScripts: Record<string, boolean>;
      scripts: Record<string, string>;
    };
    expect(pkg.allowScripts.electron).toBe(false);
    expect(pkg.scripts.postinstall).toBe('node scripts/electron-postinstall.mjs');
  });
});
