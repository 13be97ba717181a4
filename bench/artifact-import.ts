/**
 * `npm run bench artifact-import`: importing a 256 MiB initrd through the `artifacts:import` service (read,
 * SHA-256 and copy in a worker thread, fsync, commit) against `openssl dgst -sha256` of the same file, with
 * the main thread's longest event-loop stall during the import (perf_hooks.monitorEventLoopDelay; target
 * < 50 ms). Then the time of one demo cycle (simulated host launch + validate + secret over loopback HTTP).
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LUKS_PASSPHRASE_GUID, secretAccount } from '../app/profile';
import { startService } from '../server/serve/serve';
import { ArtifactImportService } from '../server/services/artifact-import';
import { ArtifactStore } from '../server/services/artifact-store';
import { DemoHostRunner } from '../server/services/demo-host';
import { InMemorySecretStore } from '../server/services/secret-store';

const SIZE_MIB = 256;
const RUNS = 3;
const FIRMWARE = 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function importBench(dir: string): Promise<void> {
  const file = join(dir, 'initrd.img');
  const fd = openSync(file, 'w');
  for (let i = 0; i < SIZE_MIB; i++) writeSync(fd, randomBytes(1024 * 1024));
  closeSync(fd);
  // Streamed: a 256 MiB buffer here would be garbage collected during the import and skew the stall figure.
  const ref = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) ref.update(chunk as Buffer);
  const want = ref.digest('hex');

  const openssl: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync('openssl', ['dgst', '-sha256', file], { encoding: 'utf8' });
    openssl.push(performance.now() - t0);
    if (!r.stdout.includes(want)) throw new Error(`openssl disagrees: ${r.stdout}`);
  }

  const imports: number[] = [];
  const stalls: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const store = new ArtifactStore({ dir: join(dir, `store-${i}`) });
    const svc = new ArtifactImportService({ store });
    let events = 0;
    svc.subscribe(() => events++);
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    const r = await svc.import({ importId: `bench-${i}`, path: file, kind: 'initrd' });
    imports.push(performance.now() - t0);
    h.disable();
    stalls.push(h.max / 1e6);
    if (r.sha256 !== want) throw new Error('digest mismatch');
    if (events < 3) throw new Error('no progress events');
    rmSync(store.dir, { recursive: true, force: true });
  }
  const o = median(openssl);
  const im = median(imports);
  console.log(
    `file: ${SIZE_MIB} MiB random (page cache warm), median of ${RUNS}; load avg ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log(
    `openssl dgst -sha256          ${o.toFixed(0)} ms  (${((SIZE_MIB / o) * 1000).toFixed(0)} MiB/s)`,
  );
  console.log(
    `artifacts:import (worker)     ${im.toFixed(0)} ms  (${((SIZE_MIB / im) * 1000).toFixed(0)} MiB/s) = ${(im / o).toFixed(2)}x openssl  [hash + copy + fsync + commit]`,
  );
  console.log(
    `runs: openssl ${openssl.map((x) => x.toFixed(0)).join(', ')} | import ${imports.map((x) => x.toFixed(0)).join(', ')}`,
  );
  console.log(
    `main-thread longest event-loop stall during import: max ${Math.max(...stalls).toFixed(1)} ms (per run ${stalls.map((x) => x.toFixed(1)).join(', ')}; target < 50 ms)`,
  );
}

async function demoBench(dir: string): Promise<void> {
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'svc'),
    secretStore: new InMemorySecretStore(),
    ownerToken: 'bench-owner-token-0123456789',
    rateLimit: false,
  });
  try {
    const fw = await svc.artifacts.importFile(FIRMWARE);
    svc.profiles.put({
      id: 'demo',
      name: 'demo',
      scheme: 'amd-sev-es',
      policy: 0x05,
      cpuCounts: [2],
      cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      vmsaVariants: ['kvm-init2'],
      firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
      approval: 'auto',
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' }],
    });
    await svc.secretStore.set(secretAccount('demo', LUKS_PASSPHRASE_GUID), new TextEncoder().encode('pw'));
    const runner = new DemoHostRunner({ service: svc });
    const t0 = performance.now();
    const first = await runner.run({ vmId: 'demo' });
    const cold = performance.now() - t0;
    if (first.outcome !== 'released') throw new Error(`demo: ${first.message}`);
    const warm: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const r = await runner.run({ vmId: 'demo' });
      warm.push(performance.now() - t);
      if (r.outcome !== 'released') throw new Error(`demo: ${r.message}`);
    }
    console.log(
      `demo cycle (SEV-ES, 2 vCPUs, auto approval, loopback HTTP): first ${cold.toFixed(0)} ms (creates the simulated platform), then median ${median(warm).toFixed(1)} ms over 20`,
    );
  } finally {
    await svc.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-import-'));
  try {
    await importBench(dir);
    await demoBench(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
