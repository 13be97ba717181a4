import type { CliCommand } from '../io';
import { digestCommand } from './digest';
import { validateCommand } from './validate';

/** Every subcommand, in the order `sev-attest --help` lists them. */
export const commands: CliCommand[] = [digestCommand, validateCommand];
