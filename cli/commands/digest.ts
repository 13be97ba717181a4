/** `sev-attest digest`: the expected SEV / SEV-ES launch digest for a firmware, optional kernel, and vCPUs. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { computeLaunchDigest, MAX_VCPUS, type LaunchDigestInput } from '../../app/digest/launch-digest';
import { CPU_PRESETS, findCpuPreset } from '../../app/digest/cpu-presets';
import {
  DEFAULT_VMSA_VARIANT,
  VMSA_VARIANTS,
  type CpuSignature,
  type VmsaVariant,
} from '../../app/digest/vmsa';
import { CliError, type CliCommand, type CliIo } from '../io';

const usage = `usage: sev-attest digest --firmware FILE [options]

Prints the launch digest (hex) the AMD secure processor computes for a VM launched by QEMU with this
firmware (and kernel, for measured direct boot with kernel-hashes=on).

  --firmware FILE         OVMF image QEMU loads (the whole OVMF.fd for AmdSev builds; the CODE file for split builds)
  --kernel FILE           kernel measured through the firmware's hashes table (or --kernel-hash HEX)
  --initrd FILE           initrd (or --initrd-hash HEX); none = SHA-256 of empty
  --cmdline STRING        kernel command line exactly as passed to -append (or --cmdline-hash HEX)
  --sev-es                the guest policy has the ES bit: add one VMSA page per vCPU
  --cpus N                number of vCPUs (SEV-ES)
  --cpu-family A --cpu-model B --cpu-stepping C
                          guest vCPU signature (SEV-ES), as in virsh capabilities
  --cpu-preset NAME       instead of the three above: ${CPU_PRESETS.map((p) => p.name).join(', ')}
                          (any case; EPYC- may be left out: milan is EPYC-Milan)
  --vmsa-variant V        ${DEFAULT_VMSA_VARIANT} (the default, as for profiles and bundles; hosts on Linux 6.10+ with
                          KVM_SEV_INIT2) or legacy (older hosts; what libvirt's validator and sevctl build)
  --json                  print {"digest-hex", "digest-base64", "inputs"}
`;

const options = {
  firmware: { type: 'string' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  cmdline: { type: 'string' },
  'kernel-hash': { type: 'string' },
  'initrd-hash': { type: 'string' },
  'cmdline-hash': { type: 'string' },
  'sev-es': { type: 'boolean' },
  cpus: { type: 'string' },
  'cpu-family': { type: 'string' },
  'cpu-model': { type: 'string' },
  'cpu-stepping': { type: 'string' },
  'cpu-preset': { type: 'string' },
  'vmsa-variant': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** A decimal or 0x-hex non-negative integer option. */
function intOption(name: string, value: string, max: number): number {
  const v = value.trim();
  const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v.slice(2), 16) : /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n > max) {
    throw new CliError(`--${name} must be an integer in 0..${max} (decimal or 0x hex), got '${value}'`);
  }
  return n;
}

function exclusive(a: string, av: unknown, b: string, bv: unknown): void {
  if (av !== undefined && bv !== undefined) throw new CliError(`give --${a} or --${b}, not both`);
}

/** Turns the parsed options into a LaunchDigestInput; every usage problem is a CliError. */
export function digestInputFromArgs(
  argv: string[],
  cwd: string,
): { input: LaunchDigestInput; json: boolean } {
  const { values: v, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
  if (!v.firmware) throw new CliError('--firmware FILE is required');
  exclusive('kernel', v.kernel, 'kernel-hash', v['kernel-hash']);
  exclusive('initrd', v.initrd, 'initrd-hash', v['initrd-hash']);
  exclusive('cmdline', v.cmdline, 'cmdline-hash', v['cmdline-hash']);
  const path = (p: string) => resolve(cwd, p);
  const input: LaunchDigestInput = { firmware: path(v.firmware), sevEs: v['sev-es'] === true };

  const hasKernel = v.kernel !== undefined || v['kernel-hash'] !== undefined;
  const kernelExtras = ['initrd', 'initrd-hash', 'cmdline', 'cmdline-hash'] as const;
  const stray = kernelExtras.find((k) => v[k] !== undefined);
  if (!hasKernel && stray) throw new CliError(`--${stray} needs --kernel or --kernel-hash`);
  if (v.kernel !== undefined) input.kernel = path(v.kernel);
  if (v['kernel-hash'] !== undefined) input.kernel = { sha256hex: v['kernel-hash'] };
  if (v.initrd !== undefined) input.initrd = path(v.initrd);
  if (v['initrd-hash'] !== undefined) input.initrd = { sha256hex: v['initrd-hash'] };
  if (v.cmdline !== undefined) input.cmdline = v.cmdline;
  if (v['cmdline-hash'] !== undefined) input.cmdlineHash = v['cmdline-hash'];

  const sigParts = ['cpu-family', 'cpu-model', 'cpu-stepping'] as const;
  const givenSig = sigParts.filter((k) => v[k] !== undefined);
  const esOnly = ['cpus', 'cpu-preset', 'vmsa-variant', ...givenSig] as const;
  if (!input.sevEs) {
    const s = esOnly.find((k) => v[k as keyof typeof v] !== undefined);
    if (s) throw new CliError(`--${s} only applies with --sev-es`);
    return { input, json: v.json === true };
  }
  if (v.cpus === undefined) throw new CliError('--sev-es needs --cpus N');
  input.cpus = intOption('cpus', v.cpus, MAX_VCPUS);
  if (input.cpus < 1) throw new CliError('--cpus must be at least 1');

  let sig: CpuSignature;
  if (v['cpu-preset'] !== undefined) {
    if (givenSig.length)
      throw new CliError('give --cpu-preset or --cpu-family/--cpu-model/--cpu-stepping, not both');
    const p = findCpuPreset(v['cpu-preset']);
    if (!p) {
      throw new CliError(
        `unknown --cpu-preset '${v['cpu-preset']}'; known: ${CPU_PRESETS.map((x) => x.name).join(', ')}`,
      );
    }
    sig = { family: p.family, model: p.model, stepping: p.stepping };
  } else {
    if (givenSig.length !== 3) {
      throw new CliError(
        '--sev-es needs --cpu-family, --cpu-model and --cpu-stepping (or --cpu-preset NAME)',
      );
    }
    sig = {
      family: intOption('cpu-family', v['cpu-family']!, 0xf + 0xff),
      model: intOption('cpu-model', v['cpu-model']!, 0xff),
      stepping: intOption('cpu-stepping', v['cpu-stepping']!, 0xf),
    };
  }
  input.cpuSignature = sig;
  if (v['vmsa-variant'] !== undefined) {
    if (!VMSA_VARIANTS.includes(v['vmsa-variant'] as VmsaVariant)) {
      throw new CliError(`--vmsa-variant must be legacy or kvm-init2, got '${v['vmsa-variant']}'`);
    }
    input.vmsaVariant = v['vmsa-variant'] as VmsaVariant;
  }
  return { input, json: v.json === true };
}

export const digestCommand: CliCommand = {
  name: 'digest',
  summary: 'compute the expected SEV / SEV-ES launch digest',
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { input, json } = digestInputFromArgs(argv, io.cwd);
    // A one-shot process: blocking reads (stream-hash BLOCKING_CHUNK_SIZE), no thread pool.
    const r = await computeLaunchDigest({ ...input, blocking: true });
    if (json) {
      io.out(
        JSON.stringify(
          { 'digest-hex': r.digestHex, 'digest-base64': r.digestBase64, inputs: r.inputs },
          null,
          2,
        ) + '\n',
      );
    } else {
      io.out(r.digestHex + '\n');
    }
    return 0;
  },
};
