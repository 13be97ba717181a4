// `npm run app`: the desktop app where an Electron binary is installed, else the same UI in a browser
// through `sev-attest serve --ui` (servers, CI, containers, or where Electron's download failed during
// npm ci). Arguments after `npm run app --` are forwarded (e.g. `npm run app -- --secret-store memory`).
// Run `npm run build` first.
import { existsSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { planLaunch } from './run-app-lib.mjs';

const require = createRequire(import.meta.url);
let electronBinary;
try {
  // The electron package exports the binary's path; it throws when the package or binary is missing.
  const p = require('electron');
  electronBinary = typeof p === 'string' && existsSync(p) ? p : undefined;
} catch {
  electronBinary = undefined;
}

if (!existsSync('out/main/index.js') || !existsSync('dist/sev-attest.mjs')) {
  console.error('sev-attest: nothing built yet: run `npm run build` first');
  process.exit(2);
}

const plan = planLaunch({
  argv: process.argv.slice(2),
  electronBinary,
  env: process.env,
  home: homedir(),
  node: process.execPath,
});
if (plan.error) {
  console.error(`sev-attest: ${plan.error}`);
  process.exit(2);
}
if (plan.mode === 'browser') {
  if (plan.dataDir) mkdirSync(plan.dataDir, { recursive: true, mode: 0o700 });
  console.log('No Electron binary here: starting the same UI in your browser (sev-attest serve --ui).');
}
const child = spawn(plan.command, plan.args, { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code) => process.exit(code ?? 0));
