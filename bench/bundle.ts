/**
 * `npm run bench bundle`: export of the 64-row matrix (1-8 vCPUs x 4 CPU signatures x 2 VMSA
 * variants) for a 4 MiB OVMF, against (a) one firmware pass alone (read + SHA-256: the floor), (b) 64
 * in-process computeLaunchDigest calls that each re-read the firmware (no midstate reuse), and (c) 64
 * separate runs of libvirt's virt-qemu-sev-validate, one per row (a sample is timed and extrapolated).
 *
 * Debian's OVMF.fd is 2 MiB, so the 4 MiB image is built as bench/digest.ts does: random bytes followed by
 * the sevctl trimmed AmdSev tail (a real footer table with an SEV-ES reset address).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { buildBundleBody, generateSigningKey, signBundle, type BundleDocument } from '../app/bundle/bundle';
import { exportBundle } from '../app/bundle/export';
import { computeLaunchDigest, prepareFirmware } from '../app/digest/launch-digest';
import { launchMeasure, LIBVIRT_VALIDATOR, SYSTEM_PYTHON } from '../test/helpers/digest-support';
import type { VmProfile } from '../app/profile';
import { fromHex, toBase64 } from '../app/sev/bytes';

const MIB = 1024 * 1024;
const RUNS = 7;
const VQSV_RUNS = Number(process.env.BUNDLE_BENCH_VQSV_RUNS ?? 16);
const SEVCTL_TAIL =
  'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9';
const SIGS = [
  { family: 25, model: 1, stepping: 1 },
  { family: 25, model: 17, stepping: 0 },
  { family: 23, model: 49, stepping: 0 },
  { family: 23, model: 1, stepping: 2 },
];
const dir = '.tmp/bench-bundle';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const fwPath = join(dir, 'ovmf-4mib.fd');
  const tail = readFileSync(SEVCTL_TAIL);
  writeFileSync(fwPath, Buffer.concat([randomBytes(4 * MIB - tail.length), tail]));
  const sk = generateSigningKey();
  const first = await prepareFirmware(fwPath);
  const profile: VmProfile = {
    id: 'bench',
    name: 'bench',
    scheme: 'amd-sev-es',
    policy: 0x05,
    cpuCounts: [1, 2, 3, 4, 5, 6, 7, 8],
    cpuSignatures: SIGS,
    vmsaVariants: ['legacy', 'kvm-init2'],
    firmware: { kind: 'artifact', sha256: first.info.sha256, size: first.info.size },
    approval: 'manual',
    secrets: [],
  };
  const exportOnce = async () => {
    const fw = await prepareFirmware(fwPath);
    const body = buildBundleBody({ profile, firmware: fw });
    return exportBundle(signBundle(body, sk), 'native');
  };
  const out = await exportOnce();
  const doc = JSON.parse(out.text) as BundleDocument;
  if (doc.body.rows.length !== 64) throw new Error(`expected 64 rows, got ${doc.body.rows.length}`);

  // Interleaved rounds so a busy shared machine slows every variant alike.
  const t = { export: [] as number[], pass: [] as number[], naive: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    t.pass.push(await time(() => prepareFirmware(fwPath)));
    t.export.push(await time(exportOnce));
    t.naive.push(
      await time(async () => {
        for (const cpus of profile.cpuCounts)
          for (const cpuSignature of SIGS)
            for (const vmsaVariant of ['legacy', 'kvm-init2'] as const)
              await computeLaunchDigest({ firmware: fwPath, sevEs: true, cpus, cpuSignature, vmsaVariant });
      }),
    );
  }

  // libvirt's validator, one process per row (legacy rows: it builds only the legacy VMSA itself).
  const tik = randomBytes(16);
  const tikFile = join(dir, 'tik.bin');
  const tekFile = join(dir, 'tek.bin');
  writeFileSync(tikFile, tik);
  writeFileSync(tekFile, randomBytes(16));
  const legacyRows = doc.body.rows.filter((r) => r['vmsa-variant'] === 'legacy');
  const vqsv: number[] = [];
  for (let i = 0; i < VQSV_RUNS; i++) {
    const row = legacyRows[(i * 5) % legacyRows.length]!;
    const sig = row['cpu-signature']!;
    const mnonce = randomBytes(16);
    const m = launchMeasure({
      tik,
      apiMajor: 1,
      apiMinor: 51,
      build: 3,
      policy: 5,
      digest: fromHex(row.digest),
      mnonce,
    });
    const args = [
      LIBVIRT_VALIDATOR,
      `--measurement=${toBase64(Uint8Array.from([...m, ...mnonce]))}`,
      '--api-major=1',
      '--api-minor=51',
      '--build-id=3',
      '--policy=5',
      `--tik=${tikFile}`,
      `--tek=${tekFile}`,
      `--firmware=${fwPath}`,
      `--num-cpus=${row.cpus}`,
      `--cpu-family=${sig.family}`,
      `--cpu-model=${sig.model}`,
      `--cpu-stepping=${sig.stepping}`,
    ];
    const s = process.hrtime.bigint();
    const p = spawnSync(SYSTEM_PYTHON, args, { encoding: 'utf8' });
    vqsv.push(Number(process.hrtime.bigint() - s) / 1e6);
    if (p.status !== 0 || !p.stdout.includes('OK: Looks good to me')) {
      throw new Error(`virt-qemu-sev-validate disagreed on row ${row.cpus} vCPUs: ${p.stdout} ${p.stderr}`);
    }
  }
  const perVqsv = median(vqsv);
  const exportMs = median(t.export);
  const passMs = median(t.pass);
  console.log(`bench bundle: 64-row matrix (1-8 vCPUs x 4 CPU signatures x 2 VMSA variants), 4 MiB OVMF`);
  console.log(
    `  load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (2 shared cores); medians of ${RUNS}`,
  );
  console.log(`  one firmware pass alone (read + SHA-256)       ${passMs.toFixed(1)} ms`);
  console.log(
    `  bundle export (1 pass + 64 rows + sign + JSON)  ${exportMs.toFixed(1)} ms  (${(exportMs / passMs).toFixed(2)}x one pass)`,
  );
  console.log(`  64 computeLaunchDigest calls, no reuse         ${median(t.naive).toFixed(1)} ms`);
  console.log(
    `  virt-qemu-sev-validate, one run                ${perVqsv.toFixed(1)} ms (median of ${VQSV_RUNS} runs, all said OK)`,
  );
  console.log(
    `  64 virt-qemu-sev-validate runs (extrapolated)  ${(perVqsv * 64).toFixed(0)} ms  (${((perVqsv * 64) / exportMs).toFixed(0)}x the export)`,
  );
  console.log(`  bundle size ${(out.text.length / 1024).toFixed(1)} KiB`);
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
