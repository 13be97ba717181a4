/// <reference lib="dom" />
/**
 * Starts the built CLI as `sev-attest serve --ui` on loopback port 0 with a fresh data directory and an
 * in-memory secret store (it builds nothing: run `npm run build` and the renderer build first), reads the
 * URLs it prints, and stops it with SIGTERM. Also: axe-core checks, screenshots, keyboard helpers.
 */
import { test as base, expect, type Locator, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface ServeUi {
  /** The one-time sign-in link (exchanged for the session cookie on first visit). */
  loginUrl: string;
  /** The UI origin, e.g. http://127.0.0.1:41234 */
  uiUrl: string;
  /** The host-facing listener URL. */
  listenUrl?: string;
  dataDir: string;
  /** Everything the service printed (for failure messages). */
  output: () => string;
}

/** The CLI bundle to start: package.json's bin entry (SEV_ATTEST_E2E_CLI overrides it). */
const CLI = path.resolve(
  process.env.SEV_ATTEST_E2E_CLI ??
    (JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> }).bin['sev-attest']!,
);

/** The environment without tokens the developer may have set: the service generates its own. */
function serviceEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.SEV_ATTEST_OWNER_TOKEN;
  delete env.SEV_ATTEST_HOST_TOKEN;
  return env;
}

/** Starts `serve --ui` and resolves once it printed its sign-in link. */
export async function startServeUi(
  extraArgs: string[] = [],
): Promise<{ ui: ServeUi; stop: () => Promise<void> }> {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run npm run build first (the fixture builds nothing)`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sev-attest-e2e-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--ui',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--secret-store',
      'memory',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: serviceEnv() },
  );
  let out = '';
  const ui = await new Promise<ServeUi>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve --ui printed no sign-in link in 30 s:\n${out}`)),
      30_000,
    );
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const login = /(https?:\/\/127\.0\.0\.1:\d+\/ui\/login\?t=[A-Za-z0-9_-]+)/.exec(out);
      if (login) {
        clearTimeout(timer);
        const listen = /^listening (\S+)/m.exec(out);
        resolve({
          loginUrl: login[1]!,
          uiUrl: new URL(login[1]!).origin,
          listenUrl: listen?.[1],
          dataDir,
          output: () => out,
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --ui exited with ${code} before printing a sign-in link:\n${out}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { ui, stop };
}

/** A worker-scoped service: one per spec file run. */
export const test = base.extend<object, { service: ServeUi }>({
  service: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const { ui, stop } = await startServeUi();
      await use(ui);
      await stop();
    },
    { scope: 'worker' },
  ],
});
export { expect };

export const SCREENSHOT_DIR = path.resolve('test-results/screenshots');

/** Saves a full-page (or one element's) screenshot as test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string, element?: Locator): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  const viewport = page.viewportSize();
  const box = element ? await element.boundingBox() : null;
  if (!viewport || !box || box.height + 80 <= viewport.height) {
    await page.screenshot({ path: file, fullPage: true });
    return;
  }
  // A dialog is fixed over the page and scrolls inside its backdrop: grow the window so all of it shows.
  await page.setViewportSize({ width: viewport.width, height: Math.ceil(box.height + 80) });
  await page.screenshot({ path: file });
  await page.setViewportSize(viewport);
}

interface AxeResult {
  violations: {
    id: string;
    impact: string | null;
    help: string;
    nodes: { target: string[]; failureSummary?: string }[];
  }[];
}

/** Runs axe-core on the page and fails with a readable list when it finds any violation. */
export async function expectNoAxeViolations(page: Page, where: string): Promise<void> {
  const loaded = await page.evaluate(() => 'axe' in window);
  // The page's CSP (script-src 'self') refuses page.addScriptTag's inline script, as it should; evaluating
  // the source through the DevTools protocol is not governed by CSP, so the app's policy stays on.
  if (!loaded)
    await page.evaluate(`${readFileSync(path.resolve('node_modules/axe-core/axe.min.js'), 'utf8')}\n;true`);
  const result = await page.evaluate(() =>
    (window as unknown as { axe: { run: (ctx: Document) => Promise<AxeResult> } }).axe.run(document),
  );
  const summary = result.violations.map(
    (v) =>
      `${v.id} (${v.impact}): ${v.help}\n` +
      v.nodes
        .map(
          (n) =>
            `    ${n.target.join(' ')}${n.failureSummary ? ` — ${n.failureSummary.split('\n').join(' ')}` : ''}`,
        )
        .join('\n'),
  );
  expect(summary, `axe-core violations on ${where}`).toEqual([]);
}

/**
 * Signs in through the form with the owner token from the data directory: spec files share a worker's
 * service, so its one-time link may be used already (signin.spec.ts uses it up on purpose).
 */
export async function signIn(page: Page, service: ServeUi): Promise<void> {
  const token = readFileSync(path.join(service.dataDir, 'owner-token'), 'utf8').trim();
  await page.goto(`${service.uiUrl}/ui/login`);
  await page.getByLabel('Owner token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${service.uiUrl}/`);
  await waitReady(page);
}

/** Waits for the app to have loaded its first data (never a sleep). */
export async function waitReady(page: Page): Promise<void> {
  await expect(page.locator('[data-app-state]')).toHaveAttribute('data-app-state', 'ready');
}

/** Opens a screen from the sidebar. */
export async function openScreen(page: Page, label: string): Promise<void> {
  await page
    .getByRole('navigation', { name: 'Screens' })
    .getByRole('button', { name: label, exact: false })
    .first()
    .click();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
}

/** Presses Tab until `target` has focus (fails after `max` presses): proves it is reachable by keyboard. */
export async function tabTo(page: Page, target: Locator, max = 120): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`not reachable with ${max} Tab presses: ${target.toString()}`);
}
