/// <reference lib="dom" />
/**
 * SEV-SNP in Debian's Chromium against `sev-attest serve --ui`: an SNP OVMF imported through the Artifacts
 * screen, an SNP profile built from it in the editor (SNP policy, vCPU counts x signature), its expected
 * launch measurements shown live and equal to app/snp/measure's; a LUKS key with its resource path. Then a
 * simulated SNP guest (app/sim: SimulatedSnpFirmware, SnpGuestClient) run from this Node side attests
 * to the service's listener over Trustee's protocol; the owner approves its request in the page, the guest
 * decrypts its LUKS key, and Activity shows the attestation and the release with its resource path.
 *
 * The service runs with `--snp-roots` (the simulated platform's ARK/ASK/ASVK and CRL, an extra root set
 * beside AMD's, named by its file) and `--kds-url` (the simulated key server, for the VCEK).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { computeSnpLaunchDigest } from '../app/snp/measure/launch-digest';
import { vcpuSignatureOf } from '../app/snp/measure/vcpu-types';
import { DEFAULT_SNP_POLICY, SimulatedSnpFirmware } from '../app/sim/snp-firmware';
import type { SnpKdsStandIn } from '../app/sim/snp-kds-stand-in';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

// snp-guest.ts imports canonicalize, an ES-module-only package the spec's CommonJS loader cannot require:
// the guest client is bundled with it (esbuild, as scripts/build-cli.mjs bundles the CLI) and required.
type SnpGuestModule = typeof import('../app/sim/snp-guest');
let guestModule: SnpGuestModule;
import {
  expect,
  expectNoAxeViolations,
  openScreen,
  screenshot,
  signIn,
  startServeUi,
  test,
  type ServeUi,
} from './serve-fixture';

/** The last 4 KiB of an AmdSev OVMF with SNP metadata (sev-snp-measure's test image). */
const SNP_OVMF = path.resolve('test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin');
const VM_ID = 'snp-web';
const MILAN = vcpuSignatureOf(25, 1, 1);
const PASSPHRASE = 'snp disk passphrase';

test.describe.configure({ mode: 'serial' });

let page: Page;
let ovmfSha = '';
let fw: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };
let service: ServeUi;
let stopService: () => Promise<void>;
let rootsDir: string;

const pem = (der: Uint8Array, what = 'CERTIFICATE') =>
  `-----BEGIN ${what}-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/.{64}/g, '$&\n')}\n-----END ${what}-----\n`;

test.beforeAll(async ({ browser }) => {
  // RSA-2048 roots keep the set-up short; the shape is AMD's otherwise.
  fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  kds = await fw.kdsStandIn();
  rootsDir = mkdtempSync(path.join(tmpdir(), 'snp-e2e-roots-'));
  const roots = path.join(rootsDir, 'simulated-milan.pem');
  writeFileSync(
    roots,
    pem(fw.roots.ark) + pem(fw.roots.ask) + pem(fw.roots.asvk) + pem(fw.roots.crl, 'X509 CRL'),
  );
  const bundle = path.join(rootsDir, 'snp-guest.cjs');
  await build({
    entryPoints: [path.resolve('app/sim/snp-guest.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: bundle,
    logLevel: 'error',
  });
  guestModule = createRequire(__filename)(bundle) as SnpGuestModule;
  ({ ui: service, stop: stopService } = await startServeUi(['--snp-roots', roots, '--kds-url', kds.url]));
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await signIn(page, service);
});

test.afterAll(async () => {
  await page?.close();
  await stopService?.();
  await kds?.stop();
  if (rootsDir) rmSync(rootsDir, { recursive: true, force: true });
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

test('a simulated SNP guest attests; the owner approves it in the page; it decrypts its LUKS key', async () => {
  expect(service.listenUrl, service.output()).toBeTruthy();
  // The guest booted the profile's firmware with 2 vCPUs of EPYC-Milan: its report carries that measurement.
  const measurement = (await computeSnpLaunchDigest({ ovmf: SNP_OVMF, vcpus: 2, vcpuSignature: MILAN }))
    .digest;
  const guest = fw.launch({ measurement, policy: DEFAULT_SNP_POLICY });
  const { SnpGuestClient } = guestModule;
  const client = new SnpGuestClient({ baseUrl: service.listenUrl!, guest, handshakeAttempts: 1 });
  try {
    const fetched = client.getResource(`default/luks/${VM_ID}`);
    fetched.catch(() => {}); // awaited below; a refusal must not be an unhandled rejection meanwhile

    await openScreen(page, 'Live requests');
    const card = page.getByTestId('approval-card').filter({ hasText: 'Waiting for you' });
    await expect(card).toHaveCount(1);
    await expect(card).toContainText(`SEV-SNP attestation of SNP web server (${VM_ID})`);
    await expect(card.getByTestId('snp-product')).toContainText('AMD Milan');
    await expect(card).toContainText('proven by the VCEK');
    await expect(card.getByTestId('snp-root')).toHaveText(
      "certified by an extra root, not AMD's: simulated-milan.pem (--snp-roots, not AMD)",
    );
    await expect(card.getByTestId('snp-measurement')).toHaveText(Buffer.from(measurement).toString('hex'));
    await expect(card.getByTestId('snp-resources')).toContainText(`default/luks/${VM_ID}`);
    await expect(card).toContainText('CRL checked');
    await screenshot(page, 'snp-03-approval');
    await expectNoAxeViolations(page, 'SNP approval');
    await card.getByRole('button', { name: /^Approve SEV-SNP attestation/ }).click();

    expect(Buffer.from(await fetched).toString('utf8')).toBe(PASSPHRASE);
  } finally {
    client.close();
  }

  await openScreen(page, 'Activity');
  const events = page.getByRole('list', { name: 'Audit events' });
  const attested = events.locator('[data-type="snp-attest"][data-result="ok"]').first();
  await expect(attested).toContainText(VM_ID);
  await expect(attested).toContainText('SEV-SNP attestation');
  const release = events.locator('[data-type="secret-release"][data-result="ok"]').first();
  await expect(release).toContainText(VM_ID);
  await expect(release.getByTestId('event-resource')).toHaveText(`Resource default/luks/${VM_ID}`);
  await expect(release).not.toContainText(PASSPHRASE);
  await screenshot(page, 'snp-04-activity');
  await expectNoAxeViolations(page, 'SNP activity');
});
