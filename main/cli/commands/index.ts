import type { CliCommand } from '../io';

/** Every subcommand, in the order `sev-attest --help` lists them. */
export const commands: CliCommand[] = [];
