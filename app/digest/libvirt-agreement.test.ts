/**
 * Agreement with libvirt's own validator (Debian libvirt-clients-qemu 9.0, /usr/bin/virt-qemu-sev-validate).
 * The tool recomputes the launch measurement from firmware/kernel/vCPU inputs and a TIK and compares it with
 * the one given; so we hand it a measurement built from OUR digest and it must print OK (exit 0), and it must
 * reject (exit 1) a measurement built from a digest that differs by one vCPU. Its VMSA is the legacy page.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64 } from '../sev/bytes';
import { buildHashesTable, resolveKernelHashes } from './hashes-table';
import {
  computeLaunchDigest,
  digestFor,
  prepareFirmware,
  type FirmwareMeasurementState,
} from './launch-digest';
import { type CpuSignature } from './vmsa';
import {
  launchMeasure,
  libvirtValidatorMissing,
  runLibvirtValidator,
} from '../../test/helpers/digest-support';

const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const SEVCTL_FW = join(
  process.cwd(),
  'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9',
);
const EPYC_V4: CpuSignature = { family: 23, model: 1, stepping: 2 };
const MILAN: CpuSignature = { family: 25, model: 1, stepping: 1 };
const API = { apiMajor: 1, apiMinor: 51, build: 3 };
const POLICY_SEV = 0x01;
const POLICY_SEV_ES = 0x05;

const missing = libvirtValidatorMissing();
const title = `agreement with libvirt's virt-qemu-sev-validate${missing ? ` (SKIPPED: ${missing})` : ''}`;

describe.skipIf(missing !== undefined)(title, () => {
  let tmp = '';
  let tikFile = '';
  let tekFile = '';
  let tik: Uint8Array;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'libvirt-agree-'));
    tik = randomBytes(16);
    tikFile = join(tmp, 'tik.bin');
    tekFile = join(tmp, 'tek.bin');
    writeFileSync(tikFile, tik);
    writeFileSync(tekFile, randomBytes(16));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs the validator with a measurement built from `digest`; returns its exit status and output. */
  function validate(digest: Uint8Array, policy: number, configArgs: string[]) {
    const mnonce = randomBytes(16);
    const measure = launchMeasure({ tik, ...API, policy, digest, mnonce });
    return runLibvirtValidator([
      `--measurement=${toBase64(Uint8Array.from([...measure, ...mnonce]))}`,
      `--api-major=${API.apiMajor}`,
      `--api-minor=${API.apiMinor}`,
      `--build-id=${API.build}`,
      `--policy=${policy}`,
      `--tik=${tikFile}`,
      `--tek=${tekFile}`,
      ...configArgs,
    ]);
  }
  const esArgs = (cpus: number, s: CpuSignature) => [
    `--num-cpus=${cpus}`,
    `--cpu-family=${s.family}`,
    `--cpu-model=${s.model}`,
    `--cpu-stepping=${s.stepping}`,
  ];

  describe("Debian's OVMF.fd", () => {
    let state: FirmwareMeasurementState;
    beforeAll(async () => {
      state = await prepareFirmware(DEBIAN_OVMF);
    });

    it('SEV: OK for our digest, FAIL for a wrong one', () => {
      const ok = validate(digestFor(state, { sevEs: false }), POLICY_SEV, [`--firmware=${DEBIAN_OVMF}`]);
      expect(ok.stdout + ok.stderr).toContain('OK: Looks good to me');
      expect(ok.status).toBe(0);
      const wrong = digestFor(state, { sevEs: true, cpus: 1, cpuSignature: MILAN });
      const bad = validate(wrong, POLICY_SEV, [`--firmware=${DEBIAN_OVMF}`]);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('Measurement does not match');
    });

    for (const sig of [EPYC_V4, MILAN]) {
      for (const cpus of [1, 2, 7]) {
        it(`SEV-ES, ${cpus} vCPU(s), family ${sig.family} model ${sig.model} stepping ${sig.stepping}`, () => {
          const args = [`--firmware=${DEBIAN_OVMF}`, ...esArgs(cpus, sig)];
          const ours = digestFor(state, { sevEs: true, cpus, cpuSignature: sig, vmsaVariant: 'legacy' });
          const ok = validate(ours, POLICY_SEV_ES, args);
          expect(ok.stderr).toBe('');
          expect(ok.stdout).toContain('OK: Looks good to me');
          expect(ok.status).toBe(0);
          // Off by one vCPU must fail.
          const offByOne = digestFor(state, {
            sevEs: true,
            cpus: cpus + 1,
            cpuSignature: sig,
            vmsaVariant: 'legacy',
          });
          const bad = validate(offByOne, POLICY_SEV_ES, args);
          expect(bad.status).toBe(1);
          expect(bad.stderr).toContain('Measurement does not match');
        });
      }
    }

    it('SEV-ES with the kvm-init2 VMSA does NOT match libvirt 9.0 (its tool only builds the legacy page)', () => {
      const d = digestFor(state, { sevEs: true, cpus: 2, cpuSignature: MILAN, vmsaVariant: 'kvm-init2' });
      const r = validate(d, POLICY_SEV_ES, [`--firmware=${DEBIAN_OVMF}`, ...esArgs(2, MILAN)]);
      expect(r.status).toBe(1);
    });

    it('a kernel with OVMF.fd: we refuse (no hashes area); libvirt 9.0 does not check and just appends the table', async () => {
      const kernel = join(tmp, 'k-debian');
      writeFileSync(kernel, randomBytes(4096));
      const err = await computeLaunchDigest({ firmware: DEBIAN_OVMF, kernel, sevEs: false }).catch(
        (e: unknown) => e,
      );
      expect((err as { code?: string }).code).toBe('firmware-unsupported');
      // What libvirt's tool would accept: firmware || table, a VM QEMU could not actually launch with hashes.
      const table = buildHashesTable(await resolveKernelHashes({ kernel }));
      const fw = await prepareFirmware(DEBIAN_OVMF);
      const h = fw.midstate.copy().update(table).digest();
      const r = validate(new Uint8Array(h), POLICY_SEV, [`--firmware=${DEBIAN_OVMF}`, `--kernel=${kernel}`]);
      expect(r.status).toBe(0);
    });
  });

  describe('sevctl trimmed AmdSev image with random kernel, initrd and cmdline', () => {
    let kernel = '';
    let initrd = '';
    let cmdline = '';
    beforeAll(() => {
      kernel = join(tmp, 'vmlinuz');
      initrd = join(tmp, 'initrd.img');
      writeFileSync(kernel, randomBytes(300_000 + Math.floor(Math.random() * 1000)));
      writeFileSync(initrd, randomBytes(1_000_000 + Math.floor(Math.random() * 1000)));
      const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789=/._ -';
      cmdline =
        'root=/dev/vda ' +
        Array.from(randomBytes(40), (b) => alphabet[b % alphabet.length]).join('') +
        ' é=ü';
    });
    const kernelArgs = () => [
      `--firmware=${SEVCTL_FW}`,
      `--kernel=${kernel}`,
      `--initrd=${initrd}`,
      `--cmdline=${cmdline}`,
    ];

    it('SEV', async () => {
      const r = await computeLaunchDigest({ firmware: SEVCTL_FW, kernel, initrd, cmdline, sevEs: false });
      const ok = validate(r.digest, POLICY_SEV, kernelArgs());
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      // A different cmdline must fail.
      const other = await computeLaunchDigest({
        firmware: SEVCTL_FW,
        kernel,
        initrd,
        cmdline: cmdline + ' ',
        sevEs: false,
      });
      expect(validate(other.digest, POLICY_SEV, kernelArgs()).status).toBe(1);
    });

    it('SEV-ES, 3 vCPUs, Milan', async () => {
      const base = {
        firmware: SEVCTL_FW,
        kernel,
        initrd,
        cmdline,
        sevEs: true,
        cpuSignature: MILAN,
        // libvirt 9's validator builds the legacy VMSA; the default is kvm-init2.
        vmsaVariant: 'legacy',
      } as const;
      const r = await computeLaunchDigest({ ...base, cpus: 3 });
      const args = [...kernelArgs(), ...esArgs(3, MILAN)];
      const ok = validate(r.digest, POLICY_SEV_ES, args);
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      const two = await computeLaunchDigest({ ...base, cpus: 2 });
      expect(validate(two.digest, POLICY_SEV_ES, args).status).toBe(1);
    });
  });
});
