// `npm run app`: the desktop app where an Electron binary is installed, else the same UI in a browser
// through `sev-attest serve --ui` (servers, CI, containers). Run `npm run build` first.
import { existsSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
let electronBinary;
try {
  // The electron package exports the binary's path; it throws when the binary was never downloaded.
  electronBinary = require('electron');
} catch {
  electronBinary = undefined;
}

if (!existsSync('out/main/index.js') || !existsSync('dist/sev-attest.mjs')) {
  console.error('sev-attest: nothing built yet: run `npm run build` first');
  process.exit(2);
}

let child;
if (typeof electronBinary === 'string' && existsSync(electronBinary)) {
  child = spawn(electronBinary, ['.'], { stdio: 'inherit' });
} else {
  const dataDir =
    process.env.SEV_ATTEST_DATA_DIR ??
    join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'sev-attest');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  console.log('No Electron binary here: starting the same UI in your browser (sev-attest serve --ui).');
  child = spawn(process.execPath, ['dist/sev-attest.mjs', 'serve', '--ui', '--data-dir', dataDir], {
    stdio: 'inherit',
  });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code) => process.exit(code ?? 0));
