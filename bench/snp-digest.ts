/**
 * `npm run bench snp-digest`: wall time of a whole `sev-attest snp digest` process against virtee/sev-snp-measure
 * (Python) on the same inputs: a 4 MiB OVMF (random pages in front of the AmdSev fixture's last 4 KiB, so it
 * has a footer table and SEV metadata), a 12 MiB kernel, a 64 MiB initrd and 64 vCPUs. Then the digest matrix:
 * 64 rows from one OVMF pass, in process, against the OVMF pass alone and against one Python run per row.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { resolveKernelHashes } from '../app/digest/hashes-table';
import {
  computeSnpDigestMatrix,
  computeSnpLaunchDigest,
  prepareSnpOvmf,
  type SnpDigestRow,
} from '../app/snp/measure/launch-digest';
import { SNP_VCPU_TYPES, vcpuSignatureOf } from '../app/snp/measure/vcpu-types';

const RUNS = 5;
const MIB = 1024 * 1024;
const PYTHON = '/usr/bin/python3';
const TOOL = '/work/shared/tools/sev-snp-measure/sev-snp-measure.py';
const SUFFIX = 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin';
const CLI = 'dist/sev-attest.mjs';
const dir = '.tmp/bench-snp-digest';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');

function timeRun(cmd: string, args: string[]): { ms: number; stdout: string } {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 * MIB });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

/** Round-robin: one warm-up each, then RUNS rounds, so load spikes on the shared machine hit every command. */
function benchInterleaved(cmds: [string, string[]][]): { median: number; all: number[]; stdout: string }[] {
  const out = cmds.map(([cmd, args]) => ({
    median: 0,
    all: [] as number[],
    stdout: timeRun(cmd, args).stdout,
  }));
  for (let i = 0; i < RUNS; i++) cmds.forEach(([cmd, args], j) => out[j]!.all.push(timeRun(cmd, args).ms));
  for (const o of out) o.median = median(o.all);
  return out;
}

function randomFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  for (let left = size; left > 0; left -= MIB) writeSync(fd, randomBytes(Math.min(MIB, left)));
  closeSync(fd);
}

async function timed<T>(f: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await f();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

async function main(): Promise<void> {
  if (!existsSync(PYTHON) || !existsSync(TOOL)) {
    console.log(`SKIPPED: needs ${PYTHON} and ${TOOL}`);
    return;
  }
  const b = spawnSync(process.execPath, ['scripts/build-cli.mjs'], { stdio: 'inherit' });
  if (b.status !== 0) throw new Error('CLI build failed');
  mkdirSync(dir, { recursive: true });
  try {
    const ovmf = join(dir, 'OVMF-4M.fd');
    const kernel = join(dir, 'vmlinuz-12M');
    const initrd = join(dir, 'initrd-64M');
    const suffix = readFileSync(SUFFIX);
    writeFileSync(ovmf, Buffer.concat([randomBytes(4 * MIB - suffix.length), suffix]));
    randomFile(kernel, 12 * MIB);
    randomFile(initrd, 64 * MIB);
    const cmdline = 'console=ttyS0 root=/dev/vda1 ro';
    console.log('files: OVMF 4 MiB (random + AmdSev suffix), kernel 12 MiB, initrd 64 MiB (random)');
    console.log(
      `runs: ${RUNS} timed after 1 warm-up each, interleaved; medians; whole processes (start-up included)`,
    );

    const args = [
      '--mode=snp',
      `--ovmf=${ovmf}`,
      `--kernel=${kernel}`,
      `--initrd=${initrd}`,
      `--append=${cmdline}`,
      '--vcpus=64',
      '--vcpu-type=EPYC-Milan',
      '--guest-features=0x1',
    ];
    const [ours, python, openssl, nodeStart] = benchInterleaved([
      [process.execPath, [CLI, 'snp', 'digest', ...args]],
      [PYTHON, [TOOL, ...args]],
      ['openssl', ['dgst', '-sha256', ovmf, kernel, initrd]],
      [process.execPath, ['-e', '0']],
    ]) as [
      { median: number; all: number[]; stdout: string },
      ...{ median: number; all: number[]; stdout: string }[],
    ];
    if (ours.stdout !== python!.stdout)
      throw new Error(`digests differ: ${ours.stdout} vs ${python!.stdout}`);
    console.log(`\n-- one digest: 64 vCPUs, 4 MiB OVMF + 12 MiB kernel + 64 MiB initrd`);
    console.log(`   digest ${ours.stdout.trim()} (both tools)`);
    console.log(`   sev-attest snp digest   median ${fmt(ours.median)}  (runs ${runs(ours.all)})`);
    console.log(`   sev-snp-measure.py      median ${fmt(python!.median)}  (runs ${runs(python!.all)})`);
    console.log(
      `   openssl dgst -sha256    median ${fmt(openssl!.median)}  (the SHA-256 floor over the same 80 MiB)`,
    );
    console.log(`   node -e 0               median ${fmt(nodeStart!.median)}  (Node start-up alone)`);
    console.log(
      `   sev-snp-measure / ours: ${(python!.median / ours.median).toFixed(2)}x (target >= 5x); ours minus Node start-up: ${fmt(ours.median - nodeStart!.median)}`,
    );

    // In process (no start-up): the whole computation from the files against bare hashes of the same bytes in memory.
    console.log(
      '\n-- in process: computeSnpLaunchDigest (files streamed) vs the bare hashes over the bytes in memory',
    );
    const memory = [ovmf, kernel, initrd].map((f) => readFileSync(f));
    const whole: number[] = [];
    const hashesOnly: number[] = [];
    const singleInput = {
      ovmf,
      kernel,
      initrd,
      cmdline,
      vcpus: 64,
      vcpuSignature: vcpuSignatureOf(25, 1, 1),
    };
    for (let i = 0; i <= RUNS; i++) {
      const a = await timed(() => computeSnpLaunchDigest(singleInput));
      const h = await timed(() => {
        for (const m of memory.slice(1)) createHash('sha256').update(m).digest();
        for (let off = 0; off < memory[0]!.length; off += 4096) {
          createHash('sha384')
            .update(memory[0]!.subarray(off, off + 4096))
            .digest();
        }
      });
      if (i === 0) continue;
      whole.push(a.ms);
      hashesOnly.push(h.ms);
    }
    console.log(
      `   computeSnpLaunchDigest                                 median ${fmt(median(whole))}  (runs ${runs(whole)})`,
    );
    console.log(
      `   SHA-256 of kernel+initrd, SHA-384 of the OVMF pages    median ${fmt(median(hashesOnly))}  (runs ${runs(hashesOnly)})`,
    );

    // The matrix: 4 vCPU counts x 4 CPU types x 4 guest features = 64 QEMU rows, one kernel (all distinct).
    console.log('\n-- digest matrix, in process: 64 rows (4 vCPU counts x 4 types x 4 guest features)');
    const kernelHashes = await resolveKernelHashes({ kernel, initrd, cmdline });
    const types = SNP_VCPU_TYPES.filter((t) =>
      ['EPYC-v4', 'EPYC-Rome', 'EPYC-Milan', 'EPYC-Genoa'].includes(t.name),
    );
    const rows: SnpDigestRow[] = [];
    for (const vcpus of [1, 4, 16, 64])
      for (const t of types)
        for (const guestFeatures of [0x1n, 0x21n, 0x41n, 0x61n])
          rows.push({
            vcpus,
            vcpuSignature: vcpuSignatureOf(t.family, t.model, t.stepping),
            guestFeatures,
            kernelHashes,
          });
    const passes: number[] = [];
    const matrices: number[] = [];
    const singles: number[] = [];
    const bare: number[] = [];
    const ovmfBytes = readFileSync(ovmf);
    let last: ReturnType<typeof computeSnpDigestMatrix> = [];
    for (let i = 0; i <= RUNS; i++) {
      const pass = await timed(() => prepareSnpOvmf(ovmf));
      const matrix = await timed(() => computeSnpDigestMatrix(pass.value, rows));
      const single = await timed(() =>
        computeSnpDigestMatrix(pass.value, [
          { vcpus: 64, vcpuSignature: rows[0]!.vcpuSignature!, kernelHashes },
        ]),
      );
      const sha = await timed(() => {
        for (let off = 0; off < ovmfBytes.length; off += 4096) {
          createHash('sha384')
            .update(ovmfBytes.subarray(off, off + 4096))
            .digest();
        }
      });
      if (i === 0) continue; // warm-up
      passes.push(pass.ms);
      matrices.push(matrix.ms);
      singles.push(single.ms);
      bare.push(sha.ms);
      last = matrix.value;
    }
    if (new Set(last.map((m) => m.digestHex)).size !== rows.length) throw new Error('matrix rows collide');
    // Spot check: a matrix row equals the one-off computation from the files.
    const check = rows[37]!;
    const one = await computeSnpLaunchDigest({
      ovmf,
      kernel,
      initrd,
      cmdline,
      vcpus: check.vcpus,
      vcpuSignature: check.vcpuSignature!,
      guestFeatures: check.guestFeatures!,
    });
    if (one.digestHex !== last[37]!.digestHex)
      throw new Error('matrix row 37 differs from the single digest');
    console.log(
      `   OVMF pass (prepareSnpOvmf, 1024 pages from the file)   median ${fmt(median(passes))}  (runs ${runs(passes)})`,
    );
    console.log(`   bare SHA-384 of the 1024 pages in memory               median ${fmt(median(bare))}`);
    console.log(
      `   64-row matrix after that pass                          median ${fmt(median(matrices))}  (runs ${runs(matrices)})`,
    );
    console.log(`   1-row matrix (64 vCPUs) after that pass                median ${fmt(median(singles))}`);
    console.log(
      `   64 rows cost ${(median(matrices) / median(passes)).toFixed(2)} OVMF passes on top of the one pass (pass + matrix = ${fmt(median(passes) + median(matrices))})`,
    );
    // sev-snp-measure has no matrix mode: a row is a run. Time 8 runs with its precomputed OVMF hash and scale.
    const pyRuns: number[] = [];
    const ovmfHash = timeRun(PYTHON, [TOOL, '--mode=snp:ovmf-hash', `--ovmf=${ovmf}`]).stdout.trim();
    for (const r of rows.slice(0, 8)) {
      const t = types.find((x) => vcpuSignatureOf(x.family, x.model, x.stepping) === r.vcpuSignature)!;
      pyRuns.push(
        timeRun(PYTHON, [
          TOOL,
          ...args.filter((a) => !/^--(vcpus|vcpu-type|guest-features)=/.test(a)),
          `--snp-ovmf-hash=${ovmfHash}`,
          `--vcpus=${r.vcpus}`,
          `--vcpu-type=${t.name}`,
          `--guest-features=0x${r.guestFeatures!.toString(16)}`,
        ]).ms,
      );
    }
    console.log(
      `   sev-snp-measure, one run per row with --snp-ovmf-hash: median ${fmt(median(pyRuns))} per row (8 timed) -> ~${(
        (median(pyRuns) * rows.length) /
        1000
      ).toFixed(1)} s for 64 rows`,
    );
    console.log(
      `\nload average at the end: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (2 cores shared with other work)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
