import { isDomainError } from '../app/errors';
import { isSevError } from '../app/sev/errors';
import { CliError, systemErrorSentence, type CliCommand, type CliCommandEntry, type CliIo } from './io';

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
    // Node's own argument errors (parseArgs): the command's own words and its usage.
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`sev-attest ${name}: ${parseArgsSentence(err)}\n\n${cmd.usage.replace(/\n?$/, '\n')}`);
      return 2;
    }
    // File and network errors (ENOENT, ENOTDIR, EADDRINUSE...) are the user's to fix: a sentence, exit 2.
    const sentence = systemErrorSentence(e);
    if (sentence !== undefined) {
      io.err(`sev-attest ${name}: ${sentence}\n`);
      return 2;
    }
    throw e;
  }
}

/** parseArgs's message as one short sentence ("Unknown option '--x'", "--pdh needs a value"). */
export function parseArgsSentence(err: { code?: string; message: string }): string {
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /argument missing/.test(err.message)) {
    const option = /'(-[^' ]*)/.exec(err.message)?.[1];
    if (option) return `${option} needs a value`;
  }
  // Node may add advice about positional arguments after the first sentence: the usage follows instead.
  return err.message.split(/\.\s/)[0]!.replace(/\.$/, '');
}
