/**
 * `sev-attest snp digest` and `sev-attest snp ovmf-hash`: the expected SEV-SNP launch digest with
 * virtee/sev-snp-measure's option names and meanings (docs/protocol.md §13).
 */
import { parseArgs } from 'node:util';
import {
  computeSnpLaunchDigest,
  computeSnpOvmfHash,
  MAX_SNP_VCPUS,
  type SnpLaunchDigestInput,
} from '../../app/snp/measure/launch-digest';
import {
  findSnpVcpuType,
  MAX_VCPU_FAMILY,
  SNP_VCPU_TYPES,
  vcpuSignatureOf,
} from '../../app/snp/measure/vcpu-types';
import { VMM_TYPES, type VmmType } from '../../app/snp/measure/vmsa';
import { toBase64, toHex } from '../../app/sev/bytes';
import { CliError, type CliCommand, type CliIo } from '../io';
import { inputFile, parseIntOption, U32_MAX, U64_MAX } from './snp-common';

const digestUsage = `usage: sev-attest snp digest --ovmf FILE --vcpus N (--vcpu-type T | --vcpu-sig V | --vcpu-family F --vcpu-model M --vcpu-stepping S) [options]

Prints the launch digest (MEASUREMENT in the attestation report) the AMD secure processor computes for an
SEV-SNP guest started by QEMU (or AWS EC2 / Google GCE) with this OVMF, as the last line of output.
Options mean what they mean for sev-snp-measure --mode snp.

  --ovmf FILE             OVMF image (an AmdSev build for measured direct boot)
  --vcpus N               number of vCPUs (one VMSA each)
  --vcpu-type T           guest CPU model: ${SNP_VCPU_TYPES.map((t) => t.name).join(', ')}
  --vcpu-sig V            or the CPUID(1).EAX signature (e.g. 0xa00f11)
  --vcpu-family F --vcpu-model M --vcpu-stepping S
                          or family, model and stepping (as virsh capabilities shows them)
  --vmm-type T            QEMU (default), ec2 or gce (these two ignore the vCPU signature)
  --kernel FILE           kernel measured through the hashes table (kernel-hashes=on)
  --initrd FILE           initrd (needs --kernel; none = SHA-256 of nothing)
  --append CMDLINE        kernel command line exactly as given to QEMU -append (needs --kernel)
  --guest-features V      VMSA sev_features (default 0x1; 0x21 for newer kernels; any u64)
  --snp-ovmf-hash HEX     the OVMF hash from 'sev-attest snp ovmf-hash': the OVMF pages are not read again
  --output-format F       hex (default) or base64
  --mode snp              accepted for sev-snp-measure command lines; only snp is meaningful here
  -v, --verbose           print what was measured before the digest
`;

const ovmfHashUsage = `usage: sev-attest snp ovmf-hash --ovmf FILE [--output-format hex|base64]

Prints the SNP launch digest after the OVMF pages alone (sev-snp-measure --mode snp:ovmf-hash). Give it to
'sev-attest snp digest --snp-ovmf-hash' to compute many digests without reading the firmware again.
`;

const digestOptions = {
  mode: { type: 'string' },
  ovmf: { type: 'string' },
  vcpus: { type: 'string' },
  'vcpu-type': { type: 'string' },
  'vcpu-sig': { type: 'string' },
  'vcpu-family': { type: 'string' },
  'vcpu-model': { type: 'string' },
  'vcpu-stepping': { type: 'string' },
  'vmm-type': { type: 'string' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  'guest-features': { type: 'string' },
  'snp-ovmf-hash': { type: 'string' },
  'output-format': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

type OutputFormat = 'hex' | 'base64';

function outputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'hex' || value === 'base64') return value ?? 'hex';
  throw new CliError(`--output-format must be hex or base64, got '${value}'`);
}

function vmmType(value: string | undefined): VmmType {
  if (value === undefined) return 'qemu';
  const v = value.toLowerCase() as VmmType;
  if (!VMM_TYPES.includes(v)) throw new CliError(`--vmm-type must be QEMU, ec2 or gce, got '${value}'`);
  return v;
}

/** The guest CPU signature from whichever of the three ways was used; undefined when none was. */
function vcpuSignature(v: Record<string, string | boolean | undefined>): number | undefined {
  const parts = ['vcpu-family', 'vcpu-model', 'vcpu-stepping'] as const;
  const given = parts.filter((p) => v[p] !== undefined);
  const ways = [v['vcpu-type'] !== undefined, v['vcpu-sig'] !== undefined, given.length > 0].filter(Boolean);
  if (ways.length > 1) {
    throw new CliError('give one of --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping');
  }
  if (given.length > 0) {
    if (given.length !== 3) throw new CliError('--vcpu-family, --vcpu-model and --vcpu-stepping go together');
    const family = Number(parseIntOption('vcpu-family', v['vcpu-family'] as string, BigInt(MAX_VCPU_FAMILY)));
    const model = Number(parseIntOption('vcpu-model', v['vcpu-model'] as string, 0xffn));
    const stepping = Number(parseIntOption('vcpu-stepping', v['vcpu-stepping'] as string, 0xfn));
    return vcpuSignatureOf(family, model, stepping);
  }
  if (v['vcpu-sig'] !== undefined)
    return Number(parseIntOption('vcpu-sig', v['vcpu-sig'] as string, U32_MAX));
  if (v['vcpu-type'] !== undefined) {
    const t = findSnpVcpuType(v['vcpu-type'] as string);
    if (!t) {
      throw new CliError(
        `unknown --vcpu-type '${String(v['vcpu-type'])}'; known: ${SNP_VCPU_TYPES.map((x) => x.name).join(', ')}`,
      );
    }
    return vcpuSignatureOf(t.family, t.model, t.stepping);
  }
  return undefined;
}

/** Turns `snp digest` options into an SnpLaunchDigestInput; every usage problem is a CliError. */
export async function snpDigestInputFromArgs(
  argv: string[],
  cwd: string,
): Promise<{ input: SnpLaunchDigestInput; format: OutputFormat; verbose: boolean }> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: digestOptions,
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
  if (v.mode !== undefined && !['snp', 'sev-snp'].includes(v.mode.toLowerCase())) {
    throw new CliError(
      `--mode ${v.mode} is not computed here: use 'sev-attest snp ovmf-hash' for snp:ovmf-hash and 'sev-attest digest' for SEV / SEV-ES`,
    );
  }
  if (v.ovmf === undefined) throw new CliError('--ovmf FILE is required');
  if (v.vcpus === undefined) throw new CliError('--vcpus N is required');
  const vcpus = Number(parseIntOption('vcpus', v.vcpus, BigInt(MAX_SNP_VCPUS)));
  if (vcpus < 1) throw new CliError('--vcpus must be at least 1');
  if (v.initrd !== undefined && v.kernel === undefined) throw new CliError('--initrd needs --kernel');
  // As sev-snp-measure: an empty --append without a kernel means "no command line".
  if (v.append && v.kernel === undefined) throw new CliError('--append needs --kernel');
  const vmm = vmmType(v['vmm-type']);
  const sig = vcpuSignature(v);
  if (sig === undefined && vmm === 'qemu') {
    throw new CliError(
      'QEMU puts the guest CPU signature in each VMSA: give --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping',
    );
  }
  const input: SnpLaunchDigestInput = {
    ovmf: await inputFile('ovmf', v.ovmf, cwd),
    vcpus,
    vmmType: vmm,
    guestFeatures:
      v['guest-features'] === undefined
        ? 0x1n
        : parseIntOption('guest-features', v['guest-features'], U64_MAX),
  };
  if (sig !== undefined) input.vcpuSignature = sig;
  if (v['snp-ovmf-hash'] !== undefined) {
    if (!/^[0-9a-f]{96}$/i.test(v['snp-ovmf-hash'].trim())) {
      throw new CliError(
        `--snp-ovmf-hash must be 48 bytes in hex (96 hex digits), got '${v['snp-ovmf-hash']}'`,
      );
    }
    input.ovmfHash = v['snp-ovmf-hash'];
  }
  if (v.kernel !== undefined) {
    input.kernel = await inputFile('kernel', v.kernel, cwd);
    if (v.initrd !== undefined && v.initrd !== '') input.initrd = await inputFile('initrd', v.initrd, cwd);
    if (v.append !== undefined) input.cmdline = v.append;
  }
  return { input, format: outputFormat(v['output-format']), verbose: v.verbose === true };
}

const hex32 = (n: number) => '0x' + n.toString(16).padStart(8, '0');

export const snpDigestCommand: CliCommand = {
  name: 'digest',
  summary: 'expected SNP launch digest (sev-snp-measure options)',
  usage: digestUsage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { input, format, verbose } = await snpDigestInputFromArgs(argv, io.cwd);
    const r = await computeSnpLaunchDigest(input);
    if (verbose) {
      const i = r.inputs;
      const lines = [
        `ovmf: ${i.ovmf.source} (${i.ovmf.size} bytes at ${hex32(i.ovmf.gpa)}), AP reset address ${hex32(i.ovmf.resetAddress)}`,
        `ovmf hash: ${i.ovmf.ovmfHash} (${i.ovmf.ovmfHashOrigin})`,
        ...i.ovmf.sections.map((s) => `section ${s.kind} at ${hex32(s.gpa)}, ${s.size / 4096} page(s)`),
      ];
      if (i.kernelHashes) {
        lines.push(`kernel sha256: ${i.kernelHashes.kernel}`, `initrd sha256: ${i.kernelHashes.initrd}`);
        lines.push(`cmdline sha256: ${i.kernelHashes.cmdline}`);
      }
      const sig =
        i.vmmType === 'qemu' && i.vcpuSignature !== undefined
          ? `, vCPU signature ${hex32(i.vcpuSignature)}`
          : '';
      lines.push(`vmm: ${i.vmmType}, ${i.vcpus} vCPU(s)${sig}, guest features ${i.guestFeatures}`);
      io.out(lines.join('\n') + '\n');
    }
    io.out((format === 'hex' ? r.digestHex : r.digestBase64) + '\n');
    return 0;
  },
};

export const snpOvmfHashCommand: CliCommand = {
  name: 'ovmf-hash',
  summary: 'the launch digest after the OVMF pages alone (for --snp-ovmf-hash)',
  usage: ovmfHashUsage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values: v, positionals } = parseArgs({
      args: argv,
      options: { ovmf: { type: 'string' }, 'output-format': { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
    if (v.ovmf === undefined) throw new CliError('--ovmf FILE is required');
    const format = outputFormat(v['output-format']);
    const hash = await computeSnpOvmfHash(await inputFile('ovmf', v.ovmf, io.cwd));
    io.out((format === 'hex' ? toHex(hash) : toBase64(hash)) + '\n');
    return 0;
  },
};
