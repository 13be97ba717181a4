/// <reference lib="dom" />
/**
 * The sign-in form of `sev-attest serve --ui` in Debian's Chromium (issue 11, point 1): with the one-time
 * link already used, the owner pastes the owner token into the form and lands signed in (Chromium posts
 * the form with `Origin: null` from a no-referrer page; the form's CSRF token lets it through); a wrong
 * token shows a page that says so in plain words, never raw JSON.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test, waitReady } from './serve-fixture';

test('a wrong token shows a plain error page; the owner token typed into the form signs in', async ({
  browser,
  service,
}) => {
  const page = await browser.newPage();
  // The one-time link is used up elsewhere: the owner must sign in with the token.
  const used = await page.request.get(service.loginUrl, { maxRedirects: 0 });
  expect(used.status()).toBe(303);
  await page.context().clearCookies();

  await page.goto(`${service.uiUrl}/ui/login`);
  await page.getByLabel('Owner token').fill('this-is-not-the-owner-token-at-all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText(/That is not the owner token/);
  expect(await page.locator('body').innerText()).not.toContain('"error"');

  const token = readFileSync(path.join(service.dataDir, 'owner-token'), 'utf8').trim();
  await page.getByLabel('Owner token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${service.uiUrl}/`);
  await waitReady(page);
  await page.close();
});

test('a used sign-in link offers the form instead of a dead end', async ({ browser, service }) => {
  const page = await browser.newPage();
  await page.goto(service.loginUrl);
  await expect(page.getByRole('alert')).toHaveText(/already used or has expired/);
  await expect(page.getByLabel('Owner token')).toBeVisible();
  await page.close();
});
