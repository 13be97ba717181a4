/**
 * `sev-attest digest` as one CommonJS bundle (dist/sev-attest-digest.cjs, scripts/build-cli.mjs):
 * dist/sev-attest.mjs requires it for `digest`, so that command loads one small file instead of the ESM
 * graph of the dispatcher and its chunks. Same dispatcher, messages and exit codes as the full CLI.
 */
import { dispatchCli } from './dispatch';
import { runAsProcess } from './io';
import { digestCommand } from './commands/digest';

runAsProcess('sev-attest', (argv, io) => dispatchCli(argv, io, [digestCommand]), 70);
