// npm ci's postinstall for the desktop app: downloads Electron's binary (electron's own install.js,
// which package.json's allowScripts keeps npm from running directly) and never fails the install when
// the download cannot be made, e.g. on a machine that reaches the npm registry but not Electron's
// download host. `npm run app` then starts the same UI in a browser (sev-attest serve --ui); retry the
// download later with `npm run electron:download`. ELECTRON_SKIP_BINARY_DOWNLOAD=1 skips it (CI).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const strict = process.argv.includes('--strict');
if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD) process.exit(0);

let dir = process.env.SEV_ATTEST_ELECTRON_DIR;
if (!dir) {
  try {
    dir = dirname(createRequire(import.meta.url).resolve('electron/package.json'));
  } catch {
    console.warn(
      'sev-attest: the electron package is not installed; `npm run app` will use the browser mode.',
    );
    process.exit(0);
  }
}
const install = join(dir, 'install.js');
if (!existsSync(install)) process.exit(0);

const r = spawnSync(process.execPath, [install], {
  cwd: dir,
  stdio: ['ignore', 'inherit', 'pipe'],
  env: process.env,
});
if (r.status === 0) process.exit(0);
const detail = (r.stderr?.toString('utf8') ?? '').trim().split('\n')[0] || `exit ${r.status ?? r.signal}`;
console.warn(
  [
    `sev-attest: Electron's binary could not be downloaded (${detail}).`,
    '  The install continues without the desktop app: `npm run app` starts the same UI in your browser.',
    '  To get the desktop app later: `npm run electron:download` (set ELECTRON_MIRROR for a mirror).',
  ].join('\n'),
);
process.exit(strict ? 1 : 0);
