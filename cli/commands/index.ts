import type { CliCommandEntry } from '../io';

/**
 * Every subcommand, in the order `sev-attest --help` lists them. Each is loaded only when it runs: a
 * `digest` start-up must not compile serve's listener, zod and conf (see the digest benchmark).
 * The summaries here must equal the commands' own (a test checks).
 */
export const commands: readonly CliCommandEntry[] = [
  {
    name: 'digest',
    summary: 'compute the expected SEV / SEV-ES launch digest',
    load: () => import('./digest').then((m) => m.digestCommand),
  },
  {
    name: 'validate',
    summary: "check a launch measurement offline (libvirt's virt-qemu-sev-validate)",
    load: () => import('./validate').then((m) => m.validateCommand),
  },
  {
    name: 'serve',
    summary: 'run the attestation listener (headless)',
    load: () => import('./serve').then((m) => m.serveCommand),
  },
  {
    name: 'verify-chain',
    summary: "verify a platform's PDH / cert-chain against AMD's pinned roots",
    load: () => import('./verify-chain').then((m) => m.verifyChainCommand),
  },
  {
    name: 'bundle',
    summary: 'export, sign, verify and import measurement bundles; key, trust, untrust, trusted',
    load: () => import('./bundle').then((m) => m.bundleCommand),
  },
  {
    name: 'snp',
    summary: 'SEV-SNP: expected launch digest, OVMF hash, ID blocks, report verification',
    load: () => import('./snp').then((m) => m.snpCommand),
  },
  {
    name: 'chips',
    summary: "pin chips' key-server CEKs for offline owners",
    load: () => import('./chips').then((m) => m.chipsCommand),
  },
  {
    name: 'audit',
    summary: 'verify the hash-chained audit table of serve --database',
    load: () => import('./audit').then((m) => m.auditCommand),
  },
  {
    name: 'database',
    summary: 'serve --database maintenance: schema and key status, re-seal after a key rotation',
    load: () => import('./database').then((m) => m.databaseCommand),
  },
];
