import type { CliCommand } from '../io';
import { digestCommand } from './digest';

/** Every subcommand, in the order `sev-attest --help` lists them. */
export const commands: CliCommand[] = [digestCommand];
