/**
 * `sev-attest snp <subcommand>`: the SEV-SNP tools. Each subcommand lives in its own file and is loaded only
 * when it runs; to add one, add an entry to `snpSubcommands`.
 */
import type { CliCommand, CliCommandEntry } from '../io';
import { runSnp, snpUsage } from './snp-dispatch';

export { runSnp };

export const snpSubcommands: readonly CliCommandEntry[] = [
  {
    name: 'digest',
    summary: 'expected SNP launch digest (sev-snp-measure options)',
    load: () => import('./snp-digest').then((m) => m.snpDigestCommand),
  },
  {
    name: 'ovmf-hash',
    summary: 'the launch digest after the OVMF pages alone (for --snp-ovmf-hash)',
    load: () => import('./snp-digest').then((m) => m.snpOvmfHashCommand),
  },
  {
    name: 'id-block',
    summary: 'build and sign an ID block and ID auth (base64 for libvirt)',
    load: () => import('./snp-id-block').then((m) => m.snpIdBlockCommand),
  },
  {
    name: 'verify-id-block',
    summary: 'verify an ID block and ID auth (signatures, key digests)',
    load: () => import('./snp-verify-id-block').then((m) => m.snpVerifyIdBlockCommand),
  },
  {
    name: 'verify-report',
    summary: 'verify an SEV-SNP attestation report (signature, chain to AMD, revocation, TCB)',
    load: () => import('./snp-verify-report').then((m) => m.snpVerifyReportCommand),
  },
];

export const snpCommand: CliCommand = {
  name: 'snp',
  summary: 'SEV-SNP: expected launch digest, OVMF hash, ID blocks, report verification',
  usage: snpUsage(snpSubcommands),
  handlesHelp: true,
  run: (argv, io) => runSnp(argv, io, snpSubcommands),
};
