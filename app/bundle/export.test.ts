/**
 * Export targets. The vqsv script is run with bash against simulated measurements (computeMeasurement with
 * a TIK over one row's digest) and must print libvirt's OK for that row (legacy rows through libvirt's own
 * VMSA builder, kvm-init2 rows through the embedded VMSA files, a kernel row with a hostile cmdline).
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64, fromHex, toBase64, toHex } from '../sev/bytes';
import { computeMeasurement } from '../sev/measurement';
import { prepareFirmware } from '../digest/launch-digest';
import { libvirtValidatorMissing } from '../../test/helpers/digest-support';
import type { VmProfile } from '../profile';
import {
  DEBIAN_OVMF,
  GENOA,
  MILAN,
  SEVCTL_FW,
  testProfile as profile,
} from '../../test/helpers/bundle-fixtures';
import { buildBundleBody, generateSigningKey, signBundle, type BundleDocument } from './bundle';
import { exportBundle } from './export';
import { exportCsv } from './export-csv';
import { exportSimpleKbsSql, simpleKbsPolicy } from './export-simple-kbs';
import { shellQuote } from './export-vqsv';

const API = { apiMajor: 1, apiMinor: 55, build: 21 };

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'bundle-export-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function bundleFor(fwPath: string, over: Partial<VmProfile>, selection = {}): Promise<BundleDocument> {
  const fw = await prepareFirmware(fwPath);
  const p = profile({ firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size }, ...over });
  return signBundle(buildBundleBody({ profile: p, firmware: fw, selection }), generateSigningKey());
}

/** A measurement blob (measure || mnonce) for one digest, as LAUNCH_MEASURE would return it. */
function simulatedMeasurement(tik: Uint8Array, policy: number, digestHex: string): string {
  const mnonce = randomBytes(16);
  const measure = computeMeasurement({ tik, ...API, policy, digest: fromHex(digestHex), mnonce });
  return toBase64(Uint8Array.from([...measure, ...mnonce]));
}

function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  const file = join(tmp, `s-${randomBytes(4).toString('hex')}.sh`);
  writeFileSync(file, script);
  chmodSync(file, 0o755);
  const r = spawnSync('bash', [file, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(libvirtValidatorMissing() !== undefined)('vqsv script run against libvirt', () => {
  let doc: BundleDocument;
  let tikFile = '';
  let tik: Uint8Array;
  beforeAll(async () => {
    doc = await bundleFor(
      DEBIAN_OVMF,
      {},
      { cpuCounts: [1, 2], cpuSignatures: [MILAN, GENOA], vmsaVariants: ['legacy', 'kvm-init2'] },
    );
    tik = randomBytes(16);
    tikFile = join(tmp, 'tik.bin');
    writeFileSync(tikFile, tik);
  });

  it('a legacy row (libvirt builds the VMSA) and a kvm-init2 row (embedded VMSA files) each print OK', () => {
    const script = exportBundle(doc, 'vqsv').text;
    expect(script.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    for (const want of [
      doc.body.rows.find((r) => r['vmsa-variant'] === 'legacy' && r.cpus === 2)!,
      doc.body.rows.find((r) => r['vmsa-variant'] === 'kvm-init2' && r.cpus === 2)!,
    ]) {
      const m = simulatedMeasurement(tik, 5, want.digest);
      const r = runScript(script, [
        '--measurement',
        m,
        `--api-major=${API.apiMajor}`,
        '--api-minor',
        String(API.apiMinor),
        `--build-id=${API.build}`,
        '--tik',
        tikFile,
        '--firmware',
        DEBIAN_OVMF,
      ]);
      expect(r.stdout, r.stderr).toContain('OK: Looks good to me');
      expect(r.stdout).toContain(`row ${want.row}: SEV-ES, 2 vCPU(s)`);
      expect(r.status).toBe(0);
    }
  });

  it('inputs from the environment; --row restricts to one row; a mismatch exits 1, a wrong file 2', () => {
    const script = exportBundle(doc, 'vqsv').text;
    const row = doc.body.rows[5]!;
    const env = {
      SEV_MEASUREMENT: simulatedMeasurement(tik, 5, row.digest),
      SEV_API_MAJOR: String(API.apiMajor),
      SEV_API_MINOR: String(API.apiMinor),
      SEV_BUILD_ID: String(API.build),
      SEV_TIK: tikFile,
      SEV_FIRMWARE: DEBIAN_OVMF,
    };
    const ok = runScript(script, ['--row', String(row.row)], env);
    expect(ok.stdout).toContain('OK: Looks good to me');
    expect(ok.status).toBe(0);
    const other = runScript(script, ['--row', '0'], env);
    expect(other.status).toBe(1);
    expect(other.stderr).toContain('matches none');
    const wrongTik = join(tmp, 'tik2.bin');
    writeFileSync(wrongTik, randomBytes(16));
    expect(runScript(script, [], { ...env, SEV_TIK: wrongTik }).status).toBe(1);
    const wrongFw = runScript(script, [], { ...env, SEV_FIRMWARE: SEVCTL_FW });
    expect(wrongFw.status).toBe(2);
    expect(wrongFw.stderr).toContain('the bundle expects');
    const missing = runScript(script, [], { ...env, SEV_MEASUREMENT: '' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--measurement');
    expect(runScript(script, ['--list']).stdout.trim().split('\n')).toHaveLength(doc.body.rows.length);
  });

  it('measured direct boot with a hostile cmdline (quotes, $, backticks, newline) prints OK', async () => {
    const kernel = join(tmp, 'vmlinuz');
    const initrd = join(tmp, 'initrd.img');
    writeFileSync(kernel, randomBytes(200_000));
    writeFileSync(initrd, randomBytes(300_000));
    const h = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    const cmdline = `root=/dev/vda1 it's "quoted" $HOME \`id\` $(id) \\ end\nnext`;
    const kdoc = await bundleFor(SEVCTL_FW, {
      scheme: 'amd-sev',
      policy: 0x01,
      kernelHash: h(kernel),
      initrdHash: h(initrd),
      cmdline,
    });
    expect(kdoc.body.rows).toHaveLength(1);
    const r = runScript(exportBundle(kdoc, 'vqsv').text, [
      `--measurement=${simulatedMeasurement(tik, 1, kdoc.body.rows[0]!.digest)}`,
      `--api-major=${API.apiMajor}`,
      `--api-minor=${API.apiMinor}`,
      `--build-id=${API.build}`,
      `--tik=${tikFile}`,
      `--firmware=${SEVCTL_FW}`,
      `--kernel=${kernel}`,
      `--initrd=${initrd}`,
    ]);
    expect(r.stdout, r.stderr).toContain('OK: Looks good to me');
    expect(r.status).toBe(0);
  });
});

describe('simple-kbs and CSV', () => {
  it("simple-kbs policy: base64 digests, the bundle's policy, min API and builds; SQL quotes its literals", async () => {
    const doc = await bundleFor(
      SEVCTL_FW,
      { minApi: { major: 1, minor: 51 }, allowedBuildIds: [3, 4] },
      { cpuCounts: [1, 2], vmsaVariants: ['legacy'] },
    );
    const p = simpleKbsPolicy(doc);
    expect(p).toEqual({
      allowed_digests: doc.body.rows.map((r) => toBase64(fromHex(r.digest))),
      allowed_policies: [5],
      min_fw_api_major: 1,
      min_fw_api_minor: 51,
      allowed_build_ids: [3, 4],
    });
    expect(toHex(fromBase64(p.allowed_digests[0]!))).toBe(doc.body.rows[0]!.digest);
    expect(JSON.parse(exportBundle(doc, 'simple-kbs').text)).toEqual(p);
    const sql = exportSimpleKbsSql(doc);
    expect(sql).toContain(
      'INSERT INTO policy (allowed_digests, allowed_policies, min_fw_api_major, min_fw_api_minor, allowed_build_ids, create_date, valid)',
    );
    expect(sql).toContain(
      `'${JSON.stringify(p.allowed_digests)}', '[5]', 1, 51, '[3,4]', CURRENT_TIMESTAMP, 1);`,
    );
  });

  it('CSV: a header and one line per row with its inputs and digest (hex and base64)', async () => {
    const doc = await bundleFor(
      SEVCTL_FW,
      { name: 'a, "quoted" name' },
      { cpuCounts: [1, 2], cpuSignatures: [MILAN, GENOA], vmsaVariants: ['legacy', 'kvm-init2'] },
    );
    const lines = exportCsv(doc).split('\r\n');
    expect(lines[0]).toBe(
      'row,vm_id,scheme,policy,sev_es,cpus,cpu_family,cpu_model,cpu_stepping,cpu_eax,cpu_name,vmsa_variant,kernel_hashes_table,firmware_sha256,digest_hex,digest_base64',
    );
    expect(lines).toHaveLength(1 + 8 + 1);
    const r3 = doc.body.rows[3]!;
    const cells = lines[4]!.split(',');
    expect(cells[0]).toBe('3');
    expect(cells[5]).toBe(String(r3.cpus));
    expect(cells[11]).toBe(r3['vmsa-variant']);
    expect(cells[14]).toBe(r3.digest);
  });

  it('shellQuote survives every byte bash could choke on', () => {
    const nasty = `a'b"c$d\`e\\f\ng !*?[]{}();&|<>~#%`;
    const r = spawnSync('bash', ['-c', `printf '%s' ${shellQuote(nasty)}`], { encoding: 'utf8' });
    expect(r.stdout).toBe(nasty);
  });
});
