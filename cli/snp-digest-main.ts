/**
 * `sev-attest snp digest` and `snp ovmf-hash` as one CommonJS bundle (dist/sev-attest-snp-digest.cjs):
 * dist/sev-attest.mjs requires it for those two, so an SNP digest loads one small file instead of the ESM
 * graph of the dispatcher and its chunks. Same dispatchers, messages and exit codes as the full CLI.
 */
import { dispatchCli } from './dispatch';
import { runAsProcess, type CliCommandEntry } from './io';
import { snpDigestCommand, snpOvmfHashCommand } from './commands/snp-digest';
import { runSnp } from './commands/snp-dispatch';

const digestOnly: CliCommandEntry[] = [
  { name: 'digest', summary: snpDigestCommand.summary, load: async () => snpDigestCommand },
  { name: 'ovmf-hash', summary: snpOvmfHashCommand.summary, load: async () => snpOvmfHashCommand },
];

runAsProcess(
  'sev-attest',
  (argv, io) =>
    dispatchCli(argv, io, [
      {
        name: 'snp',
        summary: 'SEV-SNP',
        usage: '',
        handlesHelp: true,
        run: (a, i) => runSnp(a, i, digestOnly),
      },
    ]),
  70,
);
