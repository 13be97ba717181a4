import type { CliCommand } from '../io';
import { digestCommand } from './digest';
import { validateCommand } from './validate';
import { serveCommand } from './serve';
import { verifyChainCommand } from './verify-chain';
import { bundleCommand } from './bundle';

/** Every subcommand, in the order `sev-attest --help` lists them. */
export const commands: CliCommand[] = [
  digestCommand,
  validateCommand,
  serveCommand,
  verifyChainCommand,
  bundleCommand,
];
