import type { CliIo } from './io';
import { commands } from './commands';
import { dispatchCli, type CliCommandSource } from './dispatch';

export type { CliCommandSource } from './dispatch';

/** Dispatches to a subcommand (by default the CLI's own list) and returns the exit code. */
export function runCli(
  argv: string[],
  io: CliIo,
  list: readonly CliCommandSource[] = commands,
): Promise<number> {
  return dispatchCli(argv, io, list);
}
