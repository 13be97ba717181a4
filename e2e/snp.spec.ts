/// <reference lib="dom" />
/**
 * SEV-SNP in Debian's Chromium against `sev-attest serve --ui`: an SNP OVMF imported through the Artifacts
 * screen, an SNP profile built from it in the editor (SNP policy, vCPU counts x signature), its expected
 * launch measurements shown live and equal to app/snp/measure's; a LUKS key with its resource path.
 */
import path from 'node:path';
import type { Page } from '@playwright/test';
import { computeSnpLaunchDigest } from '../app/snp/measure/launch-digest';
import { vcpuSignatureOf } from '../app/snp/measure/vcpu-types';
import { expect, expectNoAxeViolations, openScreen, screenshot, signIn, test } from './serve-fixture';

/** The last 4 KiB of an AmdSev OVMF with SNP metadata (sev-snp-measure's test image). */
const SNP_OVMF = path.resolve('test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin');
const VM_ID = 'snp-web';
const MILAN = vcpuSignatureOf(25, 1, 1);
const PASSPHRASE = 'snp disk passphrase';

test.describe.configure({ mode: 'serial' });

let page: Page;
let ovmfSha = '';

test.beforeAll(async ({ browser, service }) => {
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await signIn(page, service);
});

test.afterAll(async () => {
  await page?.close();
});

test('an SNP OVMF imported through the Artifacts screen', async () => {
  await openScreen(page, 'Artifacts');
  await page.getByLabel('Import as').selectOption('firmware');
  await page.getByTestId('artifact-file-input').setInputFiles(SNP_OVMF);
  const details = page.getByTestId('artifact-details');
  await expect(details).toContainText(path.basename(SNP_OVMF));
  await expect(details.getByTestId('artifact-sha256')).toHaveText(/^[0-9a-f]{64}$/);
  ovmfSha = (await details.getByTestId('artifact-sha256').textContent())!;
});

test('an SNP profile from artifacts: its expected measurements are the vCPU matrix', async () => {
  await openScreen(page, 'VM profiles');
  await page.getByRole('button', { name: 'New profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'New VM profile' });
  await dialog.getByLabel('Id', { exact: true }).fill(VM_ID);
  await dialog.getByLabel('Name', { exact: true }).fill('SNP web server');
  await dialog.getByRole('radio', { name: /SEV-SNP/ }).check();
  const policy = dialog.getByTestId('snp-policy');
  await expect(policy.getByLabel('SNP policy (hex)')).toHaveValue('0x30000');
  await expect(policy.getByRole('switch', { name: /Debugging allowed/ })).toBeDisabled();
  const fw = dialog.getByRole('combobox', { name: /^Firmware image/ });
  const option = fw.locator('option', { hasText: ovmfSha.slice(0, 8) });
  await fw.selectOption((await option.getAttribute('value'))!);
  await dialog.getByLabel('vCPU counts').fill('1, 2');
  const list = dialog.getByRole('list', { name: 'Expected launch measurements' });
  await expect(list.getByTestId('launch-digest')).toHaveCount(2);
  await expect(list).toContainText('SEV-SNP');
  await expect(list).toContainText('EPYC-Milan');
  const shown = await list.getByTestId('launch-digest').allTextContents();
  const expected = await Promise.all(
    [1, 2].map(
      async (vcpus) =>
        (await computeSnpLaunchDigest({ ovmf: SNP_OVMF, vcpus, vcpuSignature: MILAN })).digestHex,
    ),
  );
  expect(shown).toEqual(expected);
  // Version 2 reports: allowed only with the warning that Trustee refuses them; back to 3.
  await dialog.getByLabel('Minimum report version').selectOption('2');
  await expect(dialog.getByText(/Trustee refuses them/)).toBeVisible();
  await dialog.getByLabel('Minimum report version').selectOption('3');
  await screenshot(page, 'snp-01-profile-editor', dialog);
  await expectNoAxeViolations(page, 'SNP profile editor');
  await dialog.getByRole('button', { name: 'Save profile' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.getByRole('row', { name: /SNP web server/ })).toBeVisible();
});

test('a LUKS key for the SNP profile, under its resource path', async () => {
  await openScreen(page, 'Secrets');
  await page.getByLabel('VM profile').selectOption(VM_ID);
  await expect(page.getByLabel('Resource path')).toHaveAttribute('placeholder', `default/luks/${VM_ID}`);
  await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
  await page.getByRole('button', { name: 'Save to keychain' }).click();
  const row = page.getByRole('row', { name: /LUKS passphrase/ });
  await expect(row.getByTestId('secret-resource')).toHaveText(`default/luks/${VM_ID}`);
  await screenshot(page, 'snp-02-secrets');
  await expectNoAxeViolations(page, 'SNP secrets');
});
