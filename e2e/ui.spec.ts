/// <reference lib="dom" />
/**
 * The owner UI in Debian's Chromium against `sev-attest serve --ui`: the first-run screen, firmware import
 * (Debian's OVMF.fd has no secret area; the trimmed AmdSev build from sevctl's vectors has one), an SEV-ES
 * profile with 2 vCPUs and a LUKS secret, the demo host's approve-and-release cycle, a wrong vCPU count
 * explained, every screen checked by axe-core and saved as a screenshot, and the flow by keyboard alone.
 * Then, on a service of its own with an empty data directory, the first-run demo: no profile, no firmware,
 * one button, approve, released.
 */
import path from 'node:path';
import type { Page } from '@playwright/test';
import {
  expect,
  expectNoAxeViolations,
  openScreen,
  screenshot,
  startServeUi,
  tabTo,
  test,
  signIn,
  waitReady,
} from './serve-fixture';

const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const AMDSEV_OVMF = path.resolve(
  'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9',
);
const VM_ID = 'demo-es';

test.describe.configure({ mode: 'serial' });

let page: Page;
/** The SHA-256 of the imported AmdSev firmware (the profile picks it). */
let amdSevSha = '';

test.beforeAll(async ({ browser, service }) => {
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await signIn(page, service);
});

test.afterAll(async () => {
  await page?.close();
});

async function importFirmware(file: string) {
  await openScreen(page, 'Artifacts');
  await page.getByLabel('Import as').selectOption('firmware');
  await page.getByTestId('artifact-file-input').setInputFiles(file);
  const details = page.getByTestId('artifact-details');
  await expect(details).toContainText(path.basename(file));
  await expect(details.getByTestId('artifact-sha256')).toHaveText(/^[0-9a-f]{64}$/);
  return details;
}

test('first run explains the flow in three steps', async () => {
  await expect(page.getByRole('heading', { level: 1 })).toContainText('released only to verified launches');
  await expect(page.locator('ol.steps > li')).toHaveCount(3);
  // The demo needs nothing of the owner's: offered from the start (it runs in its own data dir below).
  await expect(page.getByRole('button', { name: 'Run the demo', exact: true })).toBeEnabled();
  await screenshot(page, '01-first-run');
  await expectNoAxeViolations(page, 'first run');
});

test("Debian's generic OVMF.fd: imported, and a warning that QEMU cannot inject a secret", async () => {
  const details = await importFirmware(DEBIAN_OVMF);
  await expect(details.getByTestId('no-secret-area')).toContainText('QEMU cannot inject a launch secret');
  await expect(details).toContainText('Secret area');
  await screenshot(page, '02-artifacts-debian-ovmf');
  await expectNoAxeViolations(page, 'artifacts');
});

test('the trimmed AmdSev firmware: SEV-ES reset address and a secret area', async () => {
  const details = await importFirmware(AMDSEV_OVMF);
  await expect(details.getByTestId('no-secret-area')).toHaveCount(0);
  await expect(details).toContainText('SEV-ES reset address');
  await expect(details.locator('dd', { hasText: 'AP reset address is 0x' })).toContainText('Yes');
  amdSevSha = (await details.getByTestId('artifact-sha256').textContent())!;
  await expect(page.getByRole('table')).toContainText(amdSevSha.slice(0, 8));
  await screenshot(page, '03-artifacts');
});

test('an SEV-ES profile with 2 vCPUs: expected digests update live', async () => {
  await openScreen(page, 'VM profiles');
  await page.getByRole('button', { name: 'New profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'New VM profile' });
  await dialog.getByLabel('Id', { exact: true }).fill(VM_ID);
  await dialog.getByLabel('Name', { exact: true }).fill('Demo SEV-ES VM');
  await expect(dialog.getByRole('radio', { name: /SEV-ES/ })).toBeChecked();
  await expect(dialog.getByLabel('Policy (hex)')).toHaveValue('0x0005');
  const fw = dialog.getByRole('combobox', { name: /^Firmware image/ });
  const option = fw.locator('option', { hasText: amdSevSha.slice(0, 8) });
  await fw.selectOption((await option.getAttribute('value'))!);
  const digests = dialog.getByRole('list', { name: 'Expected launch digests' });
  await expect(digests.getByTestId('launch-digest')).toHaveCount(1);
  await expect(digests).toContainText('vCPUs 1');
  const first = await digests.getByTestId('launch-digest').first().textContent();
  await dialog.getByLabel('vCPU counts').fill('2');
  await expect(digests).toContainText('vCPUs 2');
  await expect(digests.getByTestId('launch-digest').first()).not.toHaveText(first!);
  await expect(digests).toContainText('EPYC-Milan');
  await screenshot(page, '04-profile-editor', dialog);
  await expectNoAxeViolations(page, 'profile editor');
  await dialog.getByRole('button', { name: 'Save profile' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.getByRole('row', { name: /Demo SEV-ES VM/ })).toContainText('0x0005');
  await screenshot(page, '05-profiles');
  await expectNoAxeViolations(page, 'profiles');
});

test('a LUKS passphrase for the profile, masked until revealed', async () => {
  await openScreen(page, 'Secrets');
  await page.getByLabel('VM profile').selectOption(VM_ID);
  await page.getByLabel('Passphrase', { exact: true }).fill('correct horse battery staple');
  await page.getByRole('button', { name: 'Save to keychain' }).click();
  await expect(
    page
      .getByRole('status')
      .filter({ hasText: /Saved in the keychain|secret/i })
      .first(),
  ).toBeVisible();
  const row = page.getByRole('row', { name: /LUKS passphrase/ });
  await expect(row).toContainText('736869e5-84f0-4973-92ec-06879ce3da0b');
  await expect(row.getByTestId('secret-value')).toHaveCount(0);
  await row.getByRole('button', { name: /^Reveal/ }).click();
  await expect(row.getByTestId('secret-value')).toHaveText('correct horse battery staple');
  await row.getByRole('button', { name: /^Hide/ }).click();
  await expect(row.getByTestId('secret-value')).toHaveCount(0);
  await screenshot(page, '06-secrets');
  await expectNoAxeViolations(page, 'secrets');
});

test('the demo host: request shown, approved, validate succeeds, activity entry', async () => {
  await openScreen(page, 'Live requests');
  await page.getByLabel('Profile to launch').selectOption(VM_ID);
  await page.getByRole('button', { name: 'Run the demo host' }).click();
  const card = page.getByTestId('approval-card').filter({ hasText: 'Waiting for you' });
  await expect(card).toHaveCount(1);
  await expect(card).toContainText(VM_ID);
  await expect(card).toContainText('Anchored by'); // the demo's simulated root is an extra anchor
  await expect(card.getByRole('timer')).toContainText('Automatic deny in');
  await screenshot(page, '07-live-request');
  await expectNoAxeViolations(page, 'live requests');
  await card.getByRole('button', { name: /^Approve/ }).click();
  const result = page.getByTestId('demo-result');
  await expect(result).toContainText('The demo host got its secret');
  await expect(result).toContainText('736869e5-84f0-4973-92ec-06879ce3da0b');
  const validates = page.getByRole('list', { name: 'Validate results' });
  await expect(validates.locator('[data-type="validate"][data-result="ok"]').first()).toBeVisible();
  await screenshot(page, '08-released');

  await openScreen(page, 'Activity');
  const events = page.getByRole('list', { name: 'Audit events' });
  await expect(events.locator('[data-type="validate"][data-result="ok"]').first()).toContainText(VM_ID);
  await expect(events.locator('[data-type="launch"]').first()).toBeVisible();
  await expect(events.locator('[data-type="decision"]').first()).toBeVisible();
  await screenshot(page, '09-activity');
  await expectNoAxeViolations(page, 'activity');
});

test('a wrong vCPU count: refused, and the activity log says why', async () => {
  await openScreen(page, 'Live requests');
  await page.getByLabel('Profile to launch').selectOption(VM_ID);
  await page.getByLabel('vCPU count override').fill('3');
  await page.getByRole('button', { name: 'Run the demo host' }).click();
  const card = page.getByTestId('approval-card').filter({ hasText: 'Waiting for you' });
  await card.getByRole('button', { name: /^Approve/ }).click();
  await expect(page.getByTestId('demo-result')).toContainText('measurement-mismatch');
  await openScreen(page, 'Activity');
  await page.getByLabel('Result').selectOption('refused');
  const mismatch = page.getByTestId('mismatch').first();
  await expect(mismatch).toContainText('The host reports 3 vCPUs, but the profile expects 2');
  await expect(mismatch.getByRole('list', { name: 'Expected digests tried' })).toContainText('vCPUs 2');
  await screenshot(page, '10-mismatch');
  await expectNoAxeViolations(page, 'activity (mismatch)');
  await page.getByLabel('Result').selectOption('');
});

test('listener and host setup screens', async () => {
  await openScreen(page, 'Listener');
  await expect(page.getByRole('heading', { name: /Status/ })).toContainText('running');
  await page.getByRole('button', { name: 'Show tokens' }).click();
  await expect(page.getByRole('button', { name: 'Copy owner token' })).toBeVisible();
  await screenshot(page, '11-listener');
  await expectNoAxeViolations(page, 'listener');
  await page.getByRole('button', { name: 'Hide tokens' }).click();

  await openScreen(page, 'Host setup');
  await page.getByLabel('VM profile').selectOption(VM_ID);
  const xml = page.getByTestId('domain-xml');
  await expect(xml).toContainText("<launchSecurity type='sev'");
  await expect(xml).toContainText('0x0005');
  await expect(page.getByTestId('host-command')).not.toBeEmpty();
  await screenshot(page, '12-host-setup');
  await expectNoAxeViolations(page, 'host setup');
});

test('keyboard only: open a screen, a dialog (Escape closes it), run the demo and approve', async () => {
  await page.goto(new URL('/#/welcome', page.url()).href);
  await waitReady(page);
  await page.locator('body').focus();
  const nav = page.getByRole('navigation', { name: 'Screens' });

  // Profiles → New profile → Escape → focus back on the opener.
  await tabTo(page, nav.getByRole('button', { name: 'VM profiles' }));
  await page.keyboard.press('Enter');
  const newProfile = page.getByRole('button', { name: 'New profile' });
  await tabTo(page, newProfile);
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'New VM profile' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByLabel('Id', { exact: true })).toBeFocused();
  // Tab stays inside the dialog.
  for (let i = 0; i < 60; i++) await page.keyboard.press('Tab');
  expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  await page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
  await expect(newProfile).toBeFocused();

  // Live requests → Run the demo host → Approve, by keyboard.
  await tabTo(page, nav.getByRole('button', { name: /Live requests/ }), 200);
  await page.keyboard.press('Enter');
  const profileSelect = page.getByLabel('Profile to launch');
  await tabTo(page, profileSelect, 200);
  await page.keyboard.press('ArrowDown'); // only one profile: stays on it
  await tabTo(page, page.getByLabel('vCPU count override'));
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Backspace');
  const run = page.getByRole('button', { name: 'Run the demo host' });
  await tabTo(page, run);
  await page.keyboard.press('Enter');
  const card = page.getByTestId('approval-card').filter({ hasText: 'Waiting for you' });
  await expect(card).toHaveCount(1);
  await page.locator('body').focus();
  await tabTo(page, card.getByRole('button', { name: /^Approve/ }), 200);
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('demo-result')).toContainText('The demo host got its secret');
});

test.describe('the first-run demo from an empty data directory', () => {
  let fresh: Awaited<ReturnType<typeof startServeUi>> | undefined;
  let newcomer: Page;

  test.beforeAll(async ({ browser }) => {
    fresh = await startServeUi();
    newcomer = await browser.newPage();
    newcomer.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await newcomer.goto(fresh.ui.loginUrl);
    await waitReady(newcomer);
  });

  test.afterAll(async () => {
    await newcomer?.close();
    await fresh?.stop();
  });

  test('Run the demo: the demo profile is created, its request approved here, the passphrase released', async () => {
    const demo = newcomer.getByTestId('first-run-demo');
    await expect(newcomer.getByRole('heading', { level: 1 })).toContainText(
      'released only to verified launches',
    );
    await demo.getByRole('button', { name: 'Run the demo', exact: true }).click();
    const card = demo.getByTestId('approval-card').filter({ hasText: 'Waiting for you' });
    await expect(card).toContainText('demo');
    await expect(card).toContainText('Anchored by');
    await expect(
      demo.getByRole('list', { name: 'Demo progress' }).locator('li[aria-current="step"]'),
    ).toContainText('Approve');
    await screenshot(newcomer, '00-first-run-demo-request');
    await expectNoAxeViolations(newcomer, 'first-run demo (request)');
    await card.getByRole('button', { name: /^Approve/ }).click();
    const result = demo.getByTestId('first-run-demo-result');
    await expect(result).toContainText('decrypted the demo passphrase');
    await expect(demo.locator('li[data-state="done"]')).toHaveCount(3);
    await screenshot(newcomer, '00-first-run-demo-released');
    await expectNoAxeViolations(newcomer, 'first-run demo (released)');

    // What it set up is the owner's to see: the profile, the demo firmware, the activity.
    await openScreen(newcomer, 'VM profiles');
    await expect(newcomer.getByRole('row', { name: /Demo VM/ })).toContainText('0x0005');
    await openScreen(newcomer, 'Artifacts');
    await expect(newcomer.getByRole('table')).toContainText('OVMF.amdsev-trimmed.fd (demo)');
    await openScreen(newcomer, 'Activity');
    const events = newcomer.getByRole('list', { name: 'Audit events' });
    await expect(events.locator('[data-type="validate"][data-result="ok"]').first()).toContainText('demo');
  });
});
