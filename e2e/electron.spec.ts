/**
 * The desktop app end to end through Playwright's `_electron`: the real preload bridge (sandbox and
 * context isolation on, as shipped), a temporary userData, the in-memory secret store and a free port.
 * Runs where an Electron binary exists (`npm i` without ELECTRON_SKIP_BINARY_DOWNLOAD); elsewhere it is
 * skipped with the reason printed. Needs `npm run build:app` first.
 */
import { _electron as electron, expect, test, type ElectronApplication } from '@playwright/test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The Electron binary path, or why there is none. */
function electronBinary(): { path?: string; reason?: string } {
  try {
    // The electron package exports the binary's path, and throws when the binary was never downloaded.
    const p = createRequire(__filename)('electron') as unknown;
    if (typeof p === 'string' && existsSync(p)) return { path: p };
    return { reason: `the electron package points at ${String(p)}, which does not exist` };
  } catch (e) {
    return { reason: `no Electron binary on this machine (${(e as Error).message.split('\n')[0]})` };
  }
}

const binary = electronBinary();
// The list reporter shows titles, not skip reasons: put the reason in the title when skipping.
const title = binary.path
  ? 'desktop app (Electron)'
  : `desktop app (Electron) SKIPPED: ${binary.reason ?? ''}`;
const mainJs = path.resolve('out/main/index.js');

test.describe(title, () => {
  test.skip(!binary.path, `SKIPPED: ${binary.reason ?? ''}`);
  test.skip(!existsSync(mainJs), 'SKIPPED: out/main/index.js is missing: run npm run build:app first');

  let app: ElectronApplication;
  let userData: string;

  test.beforeAll(async () => {
    userData = mkdtempSync(path.join(tmpdir(), 'sev-attest-electron-'));
    app = await electron.launch({
      executablePath: binary.path!,
      args: [mainJs, '--disable-gpu'],
      env: {
        ...process.env,
        SEV_ATTEST_USER_DATA: userData,
        SEV_ATTEST_SECRET_STORE: 'memory',
        SEV_ATTEST_PORT: '0',
        SEV_ATTEST_OWNER_TOKEN: 'e2e-owner-token-0123456789abcdef',
      },
    });
  });

  test.afterAll(async () => {
    await app?.close();
    if (userData) rmSync(userData, { recursive: true, force: true });
  });

  test('window runs sandboxed with the contract bridge only', async () => {
    const page = await app.firstWindow();
    await expect(page.locator('[data-app-state="ready"]')).toBeVisible();
    expect(page.url()).toMatch(/^app:\/\/sev-attest\//);
    const shape = await page.evaluate(() => ({
      hasRequire: typeof (globalThis as { require?: unknown }).require,
      hasProcess: typeof (globalThis as { process?: unknown }).process,
      groups: Object.keys((window as unknown as { api: object }).api).sort(),
    }));
    expect(shape.hasRequire).toBe('undefined');
    expect(shape.hasProcess).toBe('undefined');
    expect(shape.groups).toContain('approvals');
    const tokens = await page.evaluate(() =>
      (
        window as unknown as { api: { listener: { tokens(): Promise<{ ownerToken: string }> } } }
      ).api.listener.tokens(),
    );
    expect(tokens.ownerToken).toBe('e2e-owner-token-0123456789abcdef');
  });

  test('window.open and navigation away are denied', async () => {
    const page = await app.firstWindow();
    const before = app.windows().length;
    await page.evaluate(() => window.open('https://evil.example/', '_blank'));
    await page.evaluate(() => {
      location.href = 'https://evil.example/';
    });
    await expect(page).toHaveURL(/^app:\/\/sev-attest\//);
    expect(app.windows().length).toBe(before);
  });
});
