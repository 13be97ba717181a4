import { isDomainError } from '../app/errors';
import { isSevError } from '../app/sev/errors';
import { CliError, type CliCommand, type CliCommandEntry, type CliIo } from './io';

/** A loaded command, or an entry that loads it on demand (the CLI's own list). */
export type CliCommandSource = CliCommand | CliCommandEntry;

function help(list: readonly CliCommandSource[]): string {
  const lines = ['usage: sev-attest <command> [options]', '', 'commands:'];
  for (const c of list) lines.push(`  ${c.name.padEnd(14)} ${c.summary}`);
  lines.push('', "Run 'sev-attest <command> --help' for a command's options.");
  return lines.join('\n') + '\n';
}

/**
 * Dispatches to a subcommand of `list` and turns every expected failure into one line on stderr and an
 * exit code. No command list of its own, so the `digest` bundle (cli/digest-main.ts) holds digest alone.
 */
export async function dispatchCli(
  argv: string[],
  io: CliIo,
  list: readonly CliCommandSource[],
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(help(list));
    return name ? 0 : 2;
  }
  const found = list.find((c) => c.name === name);
  if (!found) {
    io.err(`sev-attest: unknown command '${name}'\n${help(list)}`);
    return 2;
  }
  const cmd = 'load' in found ? await found.load() : found;
  if (!cmd.handlesHelp && (rest.includes('--help') || rest.includes('-h'))) {
    io.out(cmd.usage.endsWith('\n') ? cmd.usage : cmd.usage + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof CliError) {
      io.err(`sev-attest ${name}: ${e.message}\n`);
      return e.exitCode;
    }
    if (isSevError(e)) {
      io.err(`sev-attest ${name}: ${e.message} (${e.code})\n`);
      return 1;
    }
    if (isDomainError(e)) {
      io.err(`sev-attest ${name}: ${e.message}\n`);
      return e.code === 'bad-arguments' ? 2 : 1;
    }
    // Node's own argument errors (parseArgs) and file errors are user errors too.
    const err = e as NodeJS.ErrnoException;
    if (
      err &&
      typeof err.code === 'string' &&
      (err.code.startsWith('ERR_PARSE_ARGS') ||
        err.code === 'ENOENT' ||
        err.code === 'EACCES' ||
        err.code === 'EISDIR')
    ) {
      io.err(`sev-attest ${name}: ${err.message}\n`);
      return 2;
    }
    throw e;
  }
}
