/**
 * `sev-attest snp <subcommand>`: the SEV-SNP tools. Each subcommand lives in its own file and is loaded only
 * when it runs; to add one, add an entry to `snpSubcommands`.
 */
import { isSevError } from '../../app/sev/errors';
import { CliError, type CliCommand, type CliCommandEntry, type CliIo } from '../io';

export const snpSubcommands: readonly CliCommandEntry[] = [
  {
    name: 'digest',
    summary: 'expected SNP launch digest (sev-snp-measure options)',
    load: () => import('./snp-digest').then((m) => m.snpDigestCommand),
  },
  {
    name: 'ovmf-hash',
    summary: 'the launch digest after the OVMF pages alone (for --snp-ovmf-hash)',
    load: () => import('./snp-digest').then((m) => m.snpOvmfHashCommand),
  },
  {
    name: 'id-block',
    summary: 'build and sign an ID block and ID auth (base64 for libvirt)',
    load: () => import('./snp-id-block').then((m) => m.snpIdBlockCommand),
  },
  {
    name: 'verify-id-block',
    summary: 'verify an ID block and ID auth (signatures, key digests)',
    load: () => import('./snp-verify-id-block').then((m) => m.snpVerifyIdBlockCommand),
  },
  {
    name: 'verify-report',
    summary: 'verify an SEV-SNP attestation report (signature, chain to AMD, revocation, TCB)',
    load: () => import('./snp-verify-report').then((m) => m.snpVerifyReportCommand),
  },
];

function usage(list: readonly CliCommandEntry[]): string {
  const lines = [
    'usage: sev-attest snp <subcommand> [options]',
    '',
    'AMD SEV-SNP tools.',
    '',
    'subcommands:',
  ];
  for (const c of list) lines.push(`  ${c.name.padEnd(16)} ${c.summary}`);
  lines.push('', "Run 'sev-attest snp <subcommand> --help' for its options.");
  return lines.join('\n') + '\n';
}

/** Runs one subcommand; expected failures become one line `sev-attest snp <sub>: …` and an exit code. */
export async function runSnp(
  argv: string[],
  io: CliIo,
  list: readonly CliCommandEntry[] = snpSubcommands,
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage(list));
    return name ? 0 : 2;
  }
  const entry = list.find((c) => c.name === name);
  if (!entry) {
    throw new CliError(`unknown subcommand '${name}'; known: ${list.map((c) => c.name).join(', ')}`);
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(cmd.usage.endsWith('\n') ? cmd.usage : cmd.usage + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof CliError) {
      io.err(`sev-attest snp ${name}: ${e.message}\n`);
      return e.exitCode;
    }
    if (isSevError(e)) {
      io.err(`sev-attest snp ${name}: ${e.message} (${e.code})\n`);
      return 1;
    }
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`sev-attest snp ${name}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

export const snpCommand: CliCommand = {
  name: 'snp',
  summary: 'SEV-SNP: expected launch digest, OVMF hash, ID blocks, report verification',
  usage: usage(snpSubcommands),
  handlesHelp: true,
  run: (argv, io) => runSnp(argv, io),
};
