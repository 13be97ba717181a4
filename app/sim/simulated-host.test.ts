import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { concat, fromBase64, toHex } from '../sev/bytes';
import { computeLaunchDigest } from '../digest/launch-digest';
import { LaunchSession } from '../sev/session';
import { verifyMeasurement } from '../sev/measurement';
import { packageSecret, SecretTable } from '../sev/secret';
import { SimFirmwareError } from './errors';
import { computeLaunchMeasure } from './firmware-crypto';
import { SimulatedSevPlatform } from './platform';
import { SimHostError, SimulatedHost } from './simulated-host';
import { buildSessionForTest } from '../../test/helpers/sim-testing';

const sevctl = path.join(process.cwd(), 'test/fixtures/vectors/sevctl');
const virtee = path.join(process.cwd(), 'test/fixtures/vectors/virtee-sev');
const trimmedOvmf = path.join(sevctl, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const read = (p: string) => new Uint8Array(readFileSync(p));
const empty = new Uint8Array(0);

describe('SimulatedHost feeds the firmware what QEMU measures', () => {
  let plat: SimulatedSevPlatform;
  beforeAll(() => {
    plat = SimulatedSevPlatform.create({ apiMajor: 1, apiMinor: 40, build: 40 });
  });
  const start = (host: SimulatedHost, policy: number, tik = new Uint8Array(16).fill(9)) =>
    host.launch({
      policy,
      ...(({ ownerCert, session }) => ({ dhCert: ownerCert, session }))(
        buildSessionForTest({ pdh: plat.pdh, policy, tek: new Uint8Array(16), tik }),
      ),
    });

  it('sevctl vector: trimmed OVMF + fake kernel/initrd/cmdline, TIK tik1.bin, policy 3', async () => {
    const host = await SimulatedHost.create({
      platform: plat,
      firmware: trimmedOvmf,
      kernel: path.join(sevctl, 'measurement/vmlinuz-fake'),
      initrd: path.join(sevctl, 'measurement/initrd-fake'),
      cmdline: 'foo bar baz fake kernel=cmdline',
    });
    const tik = read(path.join(sevctl, 'measurement/tik1.bin'));
    const launch = start(host, 0x03, tik);
    const digest = launch.guest.launchDigestForTest();
    const nonce = fromBase64('wxP6tRHCFrFQWxsuqZA8QA==');
    const m = computeLaunchMeasure({
      tik,
      apiMajor: 1,
      apiMinor: 40,
      build: 40,
      policy: 3,
      launchDigest: digest,
      mnonce: nonce,
    });
    expect(concat(m, nonce)).toEqual(
      fromBase64('h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA'),
    );
  });

  it('sevctl SEV-ES vector: 4 vCPUs, family 25/1/1, legacy VMSA', async () => {
    const host = await SimulatedHost.create({
      platform: plat,
      firmware: read(trimmedOvmf),
      cpus: 4,
      cpuSignature: { family: 25, model: 1, stepping: 1 },
      vmsaVariant: 'legacy',
    });
    const tik = read(path.join(sevctl, 'measurement/tik1.bin'));
    const digest = start(host, 0x05, tik).guest.launchDigestForTest();
    const expected = fromBase64('/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny');
    const m = computeLaunchMeasure({
      tik,
      apiMajor: 1,
      apiMinor: 49,
      build: 6,
      policy: 5,
      launchDigest: digest,
      mnonce: expected.subarray(32),
    });
    expect(m).toEqual(expected.subarray(0, 32));
  });

  it('virtee launch digest vectors (AmdSev suffix, empty kernel/initrd; SEV and SEV-ES kvm-init2 EPYC-v4)', async () => {
    const fw = path.join(virtee, 'ovmf_AmdSev_suffix.bin');
    const sev = await SimulatedHost.create({
      platform: plat,
      firmware: fw,
      kernel: empty,
      initrd: empty,
      cmdline: 'console=ttyS0 loglevel=7',
    });
    expect(toHex(start(sev, 0x1).guest.launchDigestForTest())).toBe(
      '82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff',
    );
    const noInitrd = await SimulatedHost.create({ platform: plat, firmware: fw, kernel: empty });
    expect(toHex(start(noInitrd, 0x1).guest.launchDigestForTest())).toBe(
      '77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898',
    );
    for (const [cpus, hex] of [
      [1, '13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c'],
      [4, '0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91'],
    ] as const) {
      const es = await SimulatedHost.create({
        platform: plat,
        firmware: fw,
        kernel: empty,
        initrd: empty,
        cpus,
        vmsaVariant: 'kvm-init2',
      });
      expect(toHex(start(es, 0x5).guest.launchDigestForTest())).toBe(hex);
    }
    const x64 = await SimulatedHost.create({
      platform: plat,
      firmware: path.join(virtee, 'ovmf_OvmfX64_suffix.bin'),
    });
    expect(toHex(start(x64, 0x1).guest.launchDigestForTest())).toBe(
      'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da',
    );
  });

  it('refuses a kernel when the firmware has no hashes table, and a secret without a secret area', async () => {
    const x64 = path.join(virtee, 'ovmf_OvmfX64_suffix.bin');
    await expect(SimulatedHost.create({ platform: plat, firmware: x64, kernel: empty })).rejects.toThrow(
      SimHostError,
    );
    await expect(SimulatedHost.create({ platform: plat, firmware: new Uint8Array(4096) })).rejects.toThrow(
      SimHostError,
    );
    const host = await SimulatedHost.create({ platform: plat, firmware: x64 });
    const launch = start(host, 0x1);
    expect(host.footer.secretArea).toEqual({ base: 0, size: 0 }); // OvmfX64 declares none
    expect(() => launch.injectSecret({ header: new Uint8Array(52), payload: new Uint8Array(16) })).toThrow(
      SimHostError,
    );
    // the AmdSev image's area is 0xC00 bytes: a larger secret does not fit
    const amd = await SimulatedHost.create({
      platform: plat,
      firmware: path.join(virtee, 'ovmf_AmdSev_suffix.bin'),
    });
    expect(() =>
      start(amd, 0x1).injectSecret({ header: new Uint8Array(52), payload: new Uint8Array(0xc10) }),
    ).toThrow(SimHostError);
  });
});

describe('SimulatedHost with the owner side (app/sev + app/digest)', () => {
  it('full launch: capabilities -> session -> measurement verified against computeLaunchDigest -> secret -> resume', async () => {
    const plat = SimulatedSevPlatform.create();
    const host = await SimulatedHost.create({
      platform: plat,
      firmware: trimmedOvmf,
      kernel: path.join(sevctl, 'measurement/vmlinuz-fake'),
      cmdline: 'root=/dev/vda1',
      cpus: 2,
      cpuSignature: { family: 25, model: 1, stepping: 1 },
      vmsaVariant: 'kvm-init2',
    });
    const caps = host.querySevCapabilities();
    expect(fromBase64(caps['cert-chain']).length).toBe(6252);
    expect(fromBase64(caps['cpu0-id'])).toEqual(plat.chipId);
    const policy = 0x5;
    const session = LaunchSession.create({ pdh: fromBase64(caps.pdh), policy });
    const launch = host.launch({
      policy,
      dhCert: session.ownerCertBase64,
      session: session.sessionBlobBase64,
    });

    const expected = await computeLaunchDigest({
      firmware: trimmedOvmf,
      kernel: path.join(sevctl, 'measurement/vmlinuz-fake'),
      cmdline: 'root=/dev/vda1',
      sevEs: true,
      cpus: 2,
      cpuSignature: { family: 25, model: 1, stepping: 1 },
      vmsaVariant: 'kvm-init2',
    });
    const info = launch.launchSecurityInfo();
    const params = {
      tik: session.tik,
      apiMajor: info['sev-api-major'],
      apiMinor: info['sev-api-minor'],
      build: info['sev-build-id'],
      policy: info['sev-policy'],
      measurement: fromBase64(info['sev-measurement']),
    };
    expect(verifyMeasurement({ ...params, digest: expected.digest })).toBe(true);
    // a different vCPU count is a different launch
    const oneCpu = await computeLaunchDigest({
      firmware: trimmedOvmf,
      kernel: path.join(sevctl, 'measurement/vmlinuz-fake'),
      cmdline: 'root=/dev/vda1',
      sevEs: true,
      cpus: 1,
      cpuSignature: { family: 25, model: 1, stepping: 1 },
      vmsaVariant: 'kvm-init2',
    });
    expect(verifyMeasurement({ ...params, digest: oneCpu.digest })).toBe(false);

    const table = new SecretTable().addLuksPassphrase('disk key');
    const packet = packageSecret({
      tek: session.tek,
      tik: session.tik,
      table: table.build(),
      measurement: params.measurement.subarray(0, 32),
      apiMajor: params.apiMajor,
      apiMinor: params.apiMinor,
    });
    const res = launch.injectSecret({
      header: Buffer.from(packet.header).toString('base64'),
      payload: Buffer.from(packet.payload).toString('base64'),
    });
    expect(res.plaintext).toEqual(table.build());
    launch.resume();
    expect(launch.guest.guestState).toBe('RUNNING');
    expect(() => launch.injectSecret(packet)).toThrow(SimFirmwareError);
  });
});
