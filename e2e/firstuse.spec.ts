/// <reference lib="dom" />
/**
 * First use and owner safety in Debian's Chromium against `serve --ui`: the first-run demo's approval card
 * names the profile and what it would release and offers deny once / deny for a while; a denial says
 * until when identical launches are refused and can be forgotten; an empty listener port is refused with
 * its reason; the profiles table fits a 760 px window; Activity lists newest first.
 */
import type { Page } from '@playwright/test';
import { expect, expectNoAxeViolations, openScreen, startServeUi, test, waitReady } from './serve-fixture';

test.describe.configure({ mode: 'serial' });

let page: Page;
// A service of its own: the worker's shared one (and its one-time sign-in link) belongs to ui.spec.ts.
let own: Awaited<ReturnType<typeof startServeUi>> | undefined;

test.beforeAll(async ({ browser }) => {
  own = await startServeUi();
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(own.ui.loginUrl);
  await waitReady(page);
});

test.afterAll(async () => {
  await page?.close();
  await own?.stop();
});

test('the approval card says what would be released; a denial says until when and can be forgotten', async () => {
  await page.getByRole('button', { name: 'Run the demo', exact: true }).click();
  await openScreen(page, 'Live requests');
  const card = page.getByTestId('approval-card').first();
  await expect(card).toContainText('Demo VM');
  await expect(card.getByTestId('approval-secrets')).toContainText('demo passphrase');
  await expect(card.getByRole('button', { name: /^Deny once/ })).toBeVisible();
  await expectNoAxeViolations(page, 'approval card');
  await card.getByRole('button', { name: /^Deny for 10 min/ }).click();
  const refusal = page.getByTestId('active-refusal').first();
  await expect(refusal).toContainText('Identical launches refused until');
  await refusal.getByRole('button', { name: /^Forget decision/ }).click();
  await expect(page.getByTestId('active-refusal')).toHaveCount(0);
});

test('an empty listener port is refused with its reason, and the bound port is shown', async () => {
  await openScreen(page, 'Listener');
  const port = page.getByLabel('Port', { exact: true });
  await expect(page.getByText(/Bound now: port \d+\./)).toBeVisible();
  await port.fill('');
  await expect(page.getByText('Enter a port: hosts are told this one (e.g. 8470).')).toBeVisible();
  // Not applied (the reason is next to the field); the listener keeps its port.
  await expect(page.getByRole('button', { name: 'Apply and restart the listener' })).toBeDisabled();
  await expect(port).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByRole('heading', { name: /Status/ })).toContainText('running');
});

test('the profiles table fits a 760 px window; Activity lists newest first', async () => {
  await page.setViewportSize({ width: 760, height: 860 });
  await openScreen(page, 'VM profiles');
  await expect(page.getByRole('row', { name: /Demo VM/ })).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await openScreen(page, 'Activity');
  const times = await page
    .getByRole('list', { name: 'Audit events' })
    .locator('time')
    .evaluateAll((els) => els.map((e) => e.getAttribute('datetime') ?? ''));
  expect(times.length).toBeGreaterThan(1);
  expect([...times].sort().reverse()).toEqual(times);
  await page.setViewportSize({ width: 1280, height: 860 });
});
