/**
 * Agreement with virtee/sev-snp-measure (Python) on random cases: both tools get the same argument list
 * (ours through the real CLI dispatcher), random vCPU counts, types, signatures, VMM types, guest features,
 * firmware contents, kernels, initrds and command lines. Slow (spawns Python), hence the file name.
 * Set SNP_MEASURE_SEED to replay a run; the seed is in the test names.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../run';
import type { CliIo } from '../io';
import { createIdBlock, loadP384PrivateKeyPem, verifyIdBlock } from '../../app/snp/id-block';
import { SNP_VCPU_TYPES } from '../../app/snp/measure/vcpu-types';

const PYTHON = '/usr/bin/python3';
const TOOL_DIR = '/work/shared/tools/sev-snp-measure';
const TOOL = join(TOOL_DIR, 'sev-snp-measure.py');
const FIXTURES = resolve('test/fixtures/snp/measure');
const missing = !existsSync(PYTHON) || !existsSync(TOOL);
const SEED = Number(process.env.SNP_MEASURE_SEED ?? Date.now() % 2 ** 31);
const CASES = 20;

function python(args: string[]): string {
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`python ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

async function ours(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd: FIXTURES };
  const code = await runCli(args, io);
  return { code, out: out.trim(), err };
}

const work = mkdtempSync(join(tmpdir(), 'snp-agree-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const caseArb = fc.record({
  vcpus: fc.integer({ min: 1, max: 64 }),
  cpu: fc.oneof(
    fc.record({ type: fc.constantFrom(...SNP_VCPU_TYPES.map((t) => t.name)) }),
    fc.record({ sig: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({
      family: fc.integer({ min: 0, max: 0xf + 0xff }),
      model: fc.integer({ min: 0, max: 0xff }),
      stepping: fc.integer({ min: 0, max: 0xf }),
    }),
  ),
  vmm: fc.constantFrom('QEMU', 'ec2', 'gce'),
  features: fc.oneof(fc.constantFrom(0x1n, 0x21n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  // 0: the AmdSev suffix as is; n > 0: n random pages in front of it (other page contents, other GPAs).
  ovmfPages: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 6 })),
  kernel: fc.option(fc.integer({ min: 0, max: 40_000 })),
  initrd: fc.option(fc.integer({ min: 0, max: 40_000 })),
  append: fc.option(
    fc.string({ unit: fc.constantFrom('a', 'Z', '=', ' ', '/', '0', '-', '.', 'é'), maxLength: 60 }),
  ),
  precomputed: fc.boolean(),
  base64: fc.boolean(),
});

describe.skipIf(missing)(`agreement with sev-snp-measure (seed ${SEED})`, () => {
  const cases = fc.sample(caseArb, { seed: SEED, numRuns: CASES });
  for (const [n, c] of cases.entries()) {
    it(`case ${n}: ${c.vcpus} vCPUs, ${JSON.stringify(c.cpu)}, ${c.vmm}, features 0x${c.features.toString(16)}`, async () => {
      const suffix = readFileSync(join(FIXTURES, 'ovmf_AmdSev_suffix.bin'));
      const ovmf = join(work, `ovmf-${n}.bin`);
      writeFileSync(ovmf, Buffer.concat([randomBytes(c.ovmfPages * 4096), suffix]));
      const args = ['--mode', 'snp', '--ovmf', ovmf, '--vcpus', String(c.vcpus), '--vmm-type', c.vmm];
      if ('type' in c.cpu) args.push('--vcpu-type', c.cpu.type);
      else if ('sig' in c.cpu) args.push('--vcpu-sig', '0x' + c.cpu.sig.toString(16));
      else {
        const { family, model, stepping } = c.cpu;
        args.push('--vcpu-family', `${family}`, '--vcpu-model', `${model}`, '--vcpu-stepping', `${stepping}`);
      }
      args.push('--guest-features', '0x' + c.features.toString(16));
      if (c.kernel !== null) {
        const kernel = join(work, `kernel-${n}`);
        writeFileSync(kernel, randomBytes(c.kernel));
        args.push('--kernel', kernel);
        if (c.initrd !== null) {
          const initrd = join(work, `initrd-${n}`);
          writeFileSync(initrd, randomBytes(c.initrd));
          args.push('--initrd', initrd);
        }
        if (c.append !== null) args.push(`--append=${c.append}`);
      }
      if (c.base64) args.push('--output-format', 'base64');

      const ovmfHash = python([TOOL, '--mode', 'snp:ovmf-hash', '--ovmf', ovmf]);
      const ourHash = await ours(['snp', 'ovmf-hash', '--ovmf', ovmf]);
      expect(ourHash).toEqual({ code: 0, out: ovmfHash, err: '' });
      if (c.precomputed) args.push('--snp-ovmf-hash', ovmfHash);

      const expected = python([TOOL, ...args]);
      const got = await ours(['snp', 'digest', ...args]);
      expect(got.err).toBe('');
      expect(got.code).toBe(0);
      expect(got.out).toBe(expected);
    });
  }
});

/** sev-snp-measure's ID block code, called as a library (it has no command of its own). */
function pythonIdBlock(measurementHex: string, idKeyPem: string, authorKeyPem: string) {
  const script = `
import sys, json, base64
sys.path.insert(0, ${JSON.stringify(TOOL_DIR)})
from sevsnpmeasure.id_block import snp_calc_id_block
out = snp_calc_id_block(bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3]).split('\\n')
block, auth = out[0].split(',')
print(json.dumps({'idBlock': block[9:], 'idAuth': auth[8:], 'idKeyDigest': out[1].split(': ')[1],
                  'authorKeyDigest': out[2].split(': ')[1]}))
`;
  return JSON.parse(python(['-c', script, measurementHex, idKeyPem, authorKeyPem])) as Record<string, string>;
}

describe.skipIf(missing)(`ID blocks agree with sev-snp-measure (seed ${SEED})`, () => {
  const keys: [string, string][] = [
    [join(FIXTURES, 'id_key_test.pem'), join(FIXTURES, 'author_key_test.pem')],
  ];
  for (let i = 0; i < 2; i++) {
    const pem = (k: string) => {
      const f = join(work, `key-${i}-${k}.pem`);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      writeFileSync(f, privateKey.export({ type: i === 0 ? 'sec1' : 'pkcs8', format: 'pem' }));
      return f;
    };
    keys.push([pem('id'), pem('author')]);
  }
  for (const [n, [idFile, authorFile]] of keys.entries()) {
    it(`keys ${n}: same block and key digests; both auths verify`, () => {
      const measurement = randomBytes(48).toString('hex');
      const theirs = pythonIdBlock(measurement, idFile, authorFile);
      const idKey = loadP384PrivateKeyPem(readFileSync(idFile), 'ID key');
      const authorKey = loadP384PrivateKeyPem(readFileSync(authorFile), 'author key');
      const mine = createIdBlock(
        { launchDigest: Buffer.from(measurement, 'hex'), policy: 0x30000n },
        idKey,
        authorKey,
      );
      expect(mine.idBlockBase64).toBe(theirs.idBlock);
      expect(Buffer.from(mine.idKeyDigest).toString('base64')).toBe(theirs.idKeyDigest);
      expect(Buffer.from(mine.authorKeyDigest!).toString('base64')).toBe(theirs.authorKeyDigest);
      const v = verifyIdBlock(Buffer.from(theirs.idBlock!, 'base64'), Buffer.from(theirs.idAuth!, 'base64'), {
        idKeyDigest: mine.idKeyDigest,
        authorKeyDigest: mine.authorKeyDigest!,
      });
      expect(v.block.launchDigest).toEqual(new Uint8Array(Buffer.from(measurement, 'hex')));
      verifyIdBlock(mine.idBlock, mine.idAuth);
    });
  }
});
