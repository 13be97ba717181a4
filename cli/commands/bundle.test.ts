/** `sev-attest bundle` through the CLI dispatcher, with an in-memory secret store for the signing key. */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmProfile } from '../../app/profile';
import { ArtifactStore } from '../../server/services/artifact-store';
import { createConfBackend } from '../../server/services/kv-backend';
import { ProfileStore } from '../../server/services/profile-store';
import { InMemorySecretStore } from '../../server/services/secret-store';
import type { CliIo } from '../io';
import { runCli } from '../run';
import { makeBundleCommand } from './bundle';

const FIRMWARE = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin');
const secrets = new InMemorySecretStore();
const commands = [makeBundleCommand({ secretStore: secrets })];
let root = '';
let home = '';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd: root };
  const code = await runCli(['bundle', ...args], io, commands);
  return { code, out, err };
}

beforeAll(async () => {
  root = fs.mkdtempSync(join(tmpdir(), 'bundle-cli-'));
  home = join(root, 'home');
  fs.mkdirSync(home);
  const artifacts = new ArtifactStore({ dir: join(home, 'artifacts') });
  const fw = await artifacts.importFile(FIRMWARE);
  const profiles = new ProfileStore({
    backend: createConfBackend({
      cwd: home,
      configName: 'profiles',
      defaults: { profiles: {} as Record<string, VmProfile> },
    }),
  });
  profiles.put({
    id: 'db',
    name: 'Database',
    scheme: 'amd-sev-es',
    policy: 0x05,
    cpuCounts: [2],
    cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    approval: 'manual',
    secrets: [],
  });
  profiles.put({
    id: 'snp',
    name: 'SNP guest',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1, 4],
    cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    approval: 'manual',
    secrets: [],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: ['ab'.repeat(48)],
      trustedAuthorKeyDigests: [],
      hostData: '11'.repeat(32),
      vmpl: 0,
      minimumReportVersion: 3,
    },
  });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('sev-attest bundle', () => {
  let fingerprint = '';

  it('export without a signing key says how to make one', async () => {
    const r = await cli(['export', '--profile', 'db', '--data-dir', 'home']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('sev-attest bundle keygen');
    expect(r.err).toContain('bundle-no-signing-key');
  });

  it('keygen, key: the fingerprint and public key; keygen again keeps the key', async () => {
    const g = await cli(['keygen', '--data-dir', 'home']);
    expect(g.code).toBe(0);
    fingerprint = /^fingerprint (\S+)$/m.exec(g.out)![1]!;
    expect(fingerprint).toMatch(/^ed25519:[A-Za-z0-9+/]{43}$/);
    const k = await cli(['key', '--data-dir', 'home']);
    expect(k.out).toBe(g.out);
    const again = await cli(['keygen', '--data-dir', 'home']);
    expect(again.out).toBe(g.out);
    expect(again.err).toContain('exists already');
    expect((await cli(['trusted', '--data-dir', 'home'])).out).toContain(fingerprint);
  });

  it('export the 64-row matrix of the issue; verify OK with the data dir, untrusted without it', async () => {
    const e = await cli([
      'export',
      '--profile',
      'db',
      '--cpus',
      '1-8',
      '--cpu-signature',
      'milan,genoa,rome,25:1:0',
      '--vmsa-variant',
      'both',
      '--data-dir',
      'home',
      '--out',
      'db.bundle.json',
    ]);
    expect(e.code, e.err).toBe(0);
    expect(e.err).toContain('64 row(s)');
    const doc = JSON.parse(fs.readFileSync(join(root, 'db.bundle.json'), 'utf8'));
    expect(doc.body.rows).toHaveLength(64);
    const ok = await cli(['verify', 'db.bundle.json', '--data-dir', 'home']);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`OK: signature valid, signer ${fingerprint}`);
    const untrusted = await cli(['verify', 'db.bundle.json']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.err).toContain('bundle-key-untrusted');
    const pinned = await cli(['verify', 'db.bundle.json', '--trust-key', fingerprint]);
    expect(pinned.code).toBe(0);
  });

  it('a modified bundle fails verify with bundle-signature-invalid', async () => {
    const doc = JSON.parse(fs.readFileSync(join(root, 'db.bundle.json'), 'utf8'));
    doc.body.rows[10].digest = doc.body.rows[11].digest;
    fs.writeFileSync(join(root, 'bad.json'), JSON.stringify(doc));
    const r = await cli(['verify', 'bad.json', '--data-dir', 'home']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('bundle-signature-invalid');
    expect(r.err).toContain('modified');
  });

  it('import into another data dir with the public key in a file; the profile holds digests only', async () => {
    const keyFile = join(root, 'laptop.pub');
    fs.writeFileSync(keyFile, (await cli(['key', '--data-dir', 'home'])).out);
    fs.mkdirSync(join(root, 'server'));
    const refused = await cli(['import', 'db.bundle.json', '--data-dir', 'server']);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('bundle-key-untrusted');
    const trust = await cli(['trust', keyFile, '--label', 'laptop', '--data-dir', 'server']);
    expect(trust.out).toContain(`trusted ${fingerprint} (laptop)`);
    const r = await cli(['import', 'db.bundle.json', '--data-dir', 'server', '--id', 'db-copy']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('imported db-copy: 64 launch digest(s) from 64 row(s)');
    const profiles = JSON.parse(fs.readFileSync(join(root, 'server/profiles.json'), 'utf8'));
    expect(profiles.profiles['db-copy'].firmware.kind).toBe('digests');
    expect(profiles.profiles['db-copy'].firmware.launchDigests).toHaveLength(64);
    const audit = fs.readFileSync(join(root, 'server/audit.log'), 'utf8');
    expect(audit).toContain('imported from a bundle signed by');
    expect((await cli(['untrust', fingerprint, '--data-dir', 'server'])).code).toBe(0);
    expect((await cli(['verify', 'db.bundle.json', '--data-dir', 'server'])).code).toBe(1);
  });

  it('every format writes; vqsv is executable; usage errors exit 2', async () => {
    for (const format of ['vqsv', 'simple-kbs', 'simple-kbs-sql', 'csv']) {
      const r = await cli(['export', '--profile', 'db', '--format', format, '--data-dir', 'home']);
      expect(r.code, `${format}: ${r.err}`).toBe(0);
      expect(r.out.length).toBeGreaterThan(50);
    }
    await cli(['export', '--profile', 'db', '--format', 'vqsv', '--data-dir', 'home', '--out', 'v.sh']);
    expect(fs.statSync(join(root, 'v.sh')).mode & 0o111).not.toBe(0);
    expect((await cli(['export', '--profile', 'db', '--cpus', '0-2', '--data-dir', 'home'])).code).toBe(2);
    expect(
      (await cli(['export', '--profile', 'db', '--cpu-signature', 'pentium', '--data-dir', 'home'])).code,
    ).toBe(2);
    expect((await cli(['export', '--profile', 'db', '--format', 'xml', '--data-dir', 'home'])).code).toBe(2);
    expect((await cli(['export', '--profile', 'nope', '--data-dir', 'home'])).code).toBe(1);
    expect((await cli(['export', '--profile', 'db'])).err).toContain('--data-dir');
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['trust', 'ed25519:short', '--data-dir', 'home'])).code).not.toBe(0);
  });
});

describe('bundle without --data-dir', () => {
  it('an SEV-SNP profile: export native, verify shows its rules and measurements, vqsv refused, import keeps SEV and SNP ids apart', async () => {
    const e = await cli(['export', '--profile', 'snp', '--data-dir', 'home', '--out', 'snp.bundle.json']);
    expect(e.code, e.err).toBe(0);
    expect(e.err).toContain('2 row(s)');
    const doc = JSON.parse(fs.readFileSync(join(root, 'snp.bundle.json'), 'utf8'));
    const [m1, m4] = doc.body.rows.map((r: { digest: string }) => r.digest);
    expect(m1).toMatch(/^[0-9a-f]{96}$/);
    const v = await cli(['verify', 'snp.bundle.json', '--data-dir', 'home']);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toContain('amd-sev-snp, policy 0x30000, 2 row(s)');
    expect(v.out).toContain('SEV-SNP: VMM qemu, guest features 0x1, VMPL 0, report version >= 3');
    expect(v.out).toContain(`host data ${'11'.repeat(32)}`);
    expect(v.out).toContain(`trusted ID key digests: ${'ab'.repeat(48)}`);
    expect(v.out).toMatch(new RegExp(`^0 +1 +0x00a00f11 EPYC-Milan +${m1}$`, 'm'));
    expect(v.out).toMatch(new RegExp(`^1 +4 +0x00a00f11 EPYC-Milan +${m4}$`, 'm'));
    const vqsv = await cli(['export', '--profile', 'snp', '--format', 'vqsv', '--data-dir', 'home']);
    expect(vqsv.code).toBe(1);
    expect(vqsv.err).toContain('bundle-export-unsupported');
    const csv = await cli(['export', '--profile', 'snp', '--format', 'csv', '--data-dir', 'home']);
    expect(csv.code).toBe(0);
    expect(csv.out.split('\r\n')[2]).toContain(m4);

    const keyFile = join(root, 'laptop.pub');
    expect((await cli(['trust', keyFile, '--data-dir', 'server'])).code).toBe(0);
    const r = await cli(['import', 'snp.bundle.json', '--data-dir', 'server', '--id', 'snp-copy']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('imported snp-copy: 2 SEV-SNP measurement(s) from 2 row(s)');
    const stored = JSON.parse(fs.readFileSync(join(root, 'server/profiles.json'), 'utf8')).profiles[
      'snp-copy'
    ];
    expect(stored).toMatchObject({
      scheme: 'amd-sev-snp',
      policy: 0x30000,
      cpuCounts: [1, 4],
      firmware: { kind: 'digests', launchDigests: [m1, m4] },
      snp: { trustedIdKeyDigests: ['ab'.repeat(48)], hostData: '11'.repeat(32) },
    });
    // db-copy is an SEV-ES profile: the SNP bundle may not replace it, nor an SEV bundle snp-copy.
    const asSev = await cli(['import', 'snp.bundle.json', '--data-dir', 'server', '--id', 'db-copy']);
    expect(asSev.code).toBe(1);
    expect(asSev.err).toContain('bundle-scheme-mismatch');
    const asSnp = await cli(['import', 'db.bundle.json', '--data-dir', 'server', '--id', 'snp-copy']);
    expect(asSnp.code).toBe(1);
    expect(asSnp.err).toContain('bundle-scheme-mismatch');
    const after = JSON.parse(fs.readFileSync(join(root, 'server/profiles.json'), 'utf8')).profiles;
    expect(after['db-copy'].scheme).toBe('amd-sev-es');
    expect(after['snp-copy'].scheme).toBe('amd-sev-snp');
  });

  it("uses the app's data directory, and the top-level help names trust", async () => {
    const xdg = fs.mkdtempSync(join(tmpdir(), 'xdg-data-'));
    let out = '';
    let err = '';
    const io: CliIo = {
      out: (t) => (out += t),
      err: (t) => (err += t),
      env: { XDG_DATA_HOME: xdg, HOME: xdg },
      cwd: xdg,
    };
    const code = await runCli(['bundle', 'export', '--profile', 'nope'], io, commands);
    expect(err).toContain(`using the app's data directory ${join(xdg, 'sev-attest')}`);
    expect(err).not.toMatch(/--data-dir DIR is required/);
    expect(err).toMatch(/nope/);
    expect(code).not.toBe(0);
    let help = '';
    await runCli(['--help'], { ...io, out: (t) => (help += t) });
    expect(help).toMatch(/bundle\s+.*trust/);
  });
});
