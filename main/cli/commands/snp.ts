/**
 * `sev-attest snp <subcommand>`: the SEV-SNP commands. The table below lists each subcommand; each is
 * loaded only when it runs. (Other SNP subcommands — digest, ovmf-hash, id-block — join this table.)
 */
import { CliError, type CliCommand, type CliCommandEntry, type CliIo } from '../io';
import { SNP_VERIFY_REPORT_USAGE } from './snp-verify-report';

export const snpSubcommands: readonly CliCommandEntry[] = [
  {
    name: 'verify-report',
    summary: 'verify an SEV-SNP attestation report (signature, chain to AMD, revocation, TCB)',
    load: () => import('./snp-verify-report').then((m) => m.snpVerifyReportCommand),
  },
];

function overview(): string {
  const lines = ['usage: sev-attest snp <subcommand> [options]', '', 'subcommands:'];
  for (const c of snpSubcommands) lines.push(`  ${c.name.padEnd(16)} ${c.summary}`);
  return lines.join('\n') + '\n';
}

// `sev-attest snp … --help` prints this (the dispatcher answers --help before a subcommand runs), so it
// carries each subcommand's full usage, exit codes included.
const usage = `${overview()}\n${SNP_VERIFY_REPORT_USAGE}`;

async function run(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) throw new CliError(`a subcommand is required\n${overview()}`);
  const found = snpSubcommands.find((c) => c.name === name);
  if (!found) throw new CliError(`unknown subcommand '${name}'\n${overview()}`);
  const cmd = await found.load();
  return cmd.run(rest, io);
}

export const snpCommand: CliCommand = {
  name: 'snp',
  summary: 'SEV-SNP: verify attestation reports',
  usage,
  run,
};
