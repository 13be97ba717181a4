/**
 * The `sev-attest snp` dispatcher over a list of subcommands: the full CLI passes every SNP subcommand
 * (commands/snp.ts), the small `snp digest` bundle (cli/snp-digest-main.ts) only the digest ones.
 */
import { isSevError } from '../../app/sev/errors';
import { CliError, type CliCommandEntry, type CliIo } from '../io';

/** The overview `sev-attest snp --help` prints for `list`. */
export function snpUsage(list: readonly CliCommandEntry[]): string {
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
export async function runSnp(argv: string[], io: CliIo, list: readonly CliCommandEntry[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(snpUsage(list));
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
