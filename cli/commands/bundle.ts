/**
 * `sev-attest bundle`: measurement bundles from the command line. Profiles, artifacts and trusted keys come
 * from the same data directory `sev-attest serve --data-dir` uses; the signing key from the secret store
 * (`--secret-store keychain|memory`, keychain by default, as serve).
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isBundleError } from '../../app/bundle/errors';
import { EXPORT_FORMATS, type ExportFormat } from '../../app/bundle/export';
import {
  verifyBundle,
  type BundleBody,
  type MatrixSelection,
  type TrustedKey,
} from '../../app/bundle/bundle';
import { isDomainError } from '../../app/errors';
import { CPU_PRESETS } from '../../app/digest/cpu-presets';
import { DEFAULT_VMSA_VARIANT } from '../../app/digest/vmsa-default';
import { parseCpuList, parseCpuSignatures, parseVmsaVariants } from '../../app/bundle/selection';
import type { VmProfile } from '../../app/profile';
import { ArtifactStore } from '../../server/services/artifact-store';
import { AuditLog } from '../../server/services/audit-log';
import { BundleService } from '../../server/services/bundle-service';
import { createConfBackend } from '../../server/services/kv-backend';
import { ProfileStore } from '../../server/services/profile-store';
import {
  createSecretStore,
  SecretStoreUnavailableError,
  type SecretStore,
} from '../../server/services/secret-store';
import {
  parseTrustedKey,
  TrustedKeyFormatError,
  TrustedKeyStore,
  type StoredTrustedKey,
} from '../../server/services/trusted-keys';
import { CliError, type CliCommand, type CliIo } from '../io';

/**
 * The app's data directory: $XDG_DATA_HOME/sev-attest (~/.local/share/sev-attest, what `npm run app`
 * gives `serve --ui`), or the desktop app's userData ($XDG_CONFIG_HOME/sev-attest) when only that exists.
 */
export function appDataDir(env: NodeJS.ProcessEnv): string {
  const home = env.HOME ?? homedir();
  const data = join(env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'sev-attest');
  const desktop = join(env.XDG_CONFIG_HOME ?? join(home, '.config'), 'sev-attest');
  return !existsSync(data) && existsSync(join(desktop, 'profiles.json')) ? desktop : data;
}

const usage = `usage: sev-attest bundle <subcommand> [options]

  export --profile VM [--cpus 1-8] [--cpu-signature milan,genoa] [--vmsa-variant both]
         [--format native|vqsv|simple-kbs|simple-kbs-sql|csv] [--out FILE] [--firmware FILE]
      Signs and writes VM's bundle (stdout without --out). The matrix defaults to the profile's vCPU
      counts, CPU signatures and VMSA variants. --cpus takes 1-8 or 1,2,4 or 1-4,8; --cpu-signature takes
      preset names (${CPU_PRESETS.map((p) => p.name).join(', ')}; 'milan' is EPYC-Milan) or
      FAMILY:MODEL:STEPPING; --vmsa-variant legacy, kvm-init2 or both (a profile's own default is
      ${DEFAULT_VMSA_VARIANT}, as for digest). --firmware gives the image when the data directory has no
      copy (its SHA-256 must be the profile's). An SEV-SNP profile exports one measurement per vCPU
      count x vCPU signature, as native or csv only (no VMSA variants; vqsv and simple-kbs check SEV
      launches).
  verify FILE [--trust-key FINGERPRINT|FILE]...
      Checks the signature and that the signer is trusted (the data directory's trusted keys, plus these).
  import FILE [--id VM] [--name NAME] [--approval manual|auto] [--trust-key ...]...
      Verifies, then registers the bundle as a VM with precomputed launch digests (no firmware needed).
      Secrets are not part of a bundle: add them with PUT /v1/vm/VM or in the app.
  keygen [--replace]     creates the Ed25519 signing key in the secret store and trusts it
  key                    prints the signing key's fingerprint and public key
  trust KEY [--label L]  trusts a signer (its public key in base64, a fingerprint, or a file of either)
  untrust FINGERPRINT    stops trusting a signer
  trusted                lists the trusted signers

common options:
  --data-dir DIR         the data directory (as serve's; or SEV_ATTEST_DATA_DIR); default the app's:
                         $XDG_DATA_HOME/sev-attest (~/.local/share/sev-attest, as npm run app in a browser),
                         else the desktop app's ~/.config/sev-attest when only that one exists
  --secret-store KIND    keychain (default) or memory (keeps nothing: no signing key survives)

verify/import exit with 1 and one of: bundle-signature-invalid (modified after signing), bundle-key-untrusted
(intact, unknown signer), bundle-unsigned, bundle-invalid (not a bundle); import also with
bundle-scheme-mismatch (an SEV-SNP bundle for an SEV profile's id, or the reverse).`;

/** The SNP rules and every row of an SEV-SNP bundle, for `bundle verify` (measurements in full: owners compare them). */
export function describeSnpBundle(b: BundleBody): string {
  const s = b.snp!;
  const first = b.rows[0]!;
  const tcb = s['minimum-tcb']
    ? Object.entries(s['minimum-tcb'])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
    : 'any';
  const lines = [
    `SEV-SNP: VMM ${first['vmm-type']}, guest features ${first['guest-features']}, VMPL ${s.vmpl}, report version >= ${s['minimum-report-version']}, minimum TCB ${tcb}`,
    `host data ${s['host-data'] ?? 'any'}`,
    `OVMF hash ${b.firmware['ovmf-hash']}`,
    ...(b.kernel
      ? [
          `kernel ${b.kernel['kernel-hash']}, initrd ${b.kernel['initrd-hash']}, cmdline ${b.kernel['cmdline-hash']}${b.kernel.cmdline !== undefined ? ` (${JSON.stringify(b.kernel.cmdline)})` : ''}`,
        ]
      : []),
    `trusted ID key digests: ${s['trusted-id-key-digests'].join(', ') || 'none'}`,
    `trusted author key digests: ${s['trusted-author-key-digests'].join(', ') || 'none'}`,
    'row  vcpus  vcpu-signature           measurement',
    ...b.rows.map((r) => {
      const sig = r['cpu-signature'];
      const sigText = sig ? `${sig.eax}${sig.name ? ` ${sig.name}` : ''}` : '-';
      return `${String(r.row).padEnd(5)}${String(r.cpus).padEnd(7)}${sigText.padEnd(25)}${r.digest}`;
    }),
  ];
  return lines.join('\n') + '\n';
}

export interface BundleCommandDeps {
  /** Replaces the store --secret-store would create (tests). */
  secretStore?: SecretStore;
}

interface Stores {
  service: BundleService;
  trustedKeys: TrustedKeyStore;
  close(): Promise<void>;
}

function openStores(dataDir: string, secrets: SecretStore, withAudit: boolean): Stores {
  const profiles = new ProfileStore({
    backend: createConfBackend({
      cwd: dataDir,
      configName: 'profiles',
      defaults: { profiles: {} as Record<string, VmProfile> },
    }),
  });
  const trustedKeys = new TrustedKeyStore(
    createConfBackend({
      cwd: dataDir,
      configName: 'trusted-keys',
      defaults: { keys: [] as StoredTrustedKey[] },
    }),
  );
  const artifacts = new ArtifactStore({ dir: join(dataDir, 'artifacts') });
  const audit = withAudit ? AuditLog.open({ file: join(dataDir, 'audit.log') }) : undefined;
  const service = new BundleService({
    profiles,
    secrets,
    trustedKeys,
    artifacts,
    ...(audit ? { audit } : {}),
  });
  return {
    service,
    trustedKeys,
    // The audit log writes in the background: closing waits for the import's event to be on disk.
    close: async () => {
      await audit?.close();
    },
  };
}

/** A key argument: a fingerprint, a base64 public key, or a file holding either (`bundle key` output too). */
function readKeyArg(arg: string, cwd: string): string {
  if (/^ed25519:/.test(arg) || /^public-key /.test(arg) || /^[A-Za-z0-9+/]{43}=$/.test(arg)) return arg;
  const lines = readFileSync(resolve(cwd, arg), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => l.startsWith('public-key ')) ?? lines[0] ?? '';
}

/** --trust-key values, trusted for this run only. */
function trustKeys(values: string[] | undefined, cwd: string): TrustedKey[] {
  return (values ?? []).map((v) => parseTrustedKey(readKeyArg(v, cwd), `--trust-key ${v}`));
}

function storedToTrusted(k: StoredTrustedKey): TrustedKey {
  return {
    fingerprint: k.fingerprint,
    ...(k.publicKey !== undefined ? { publicKey: k.publicKey } : {}),
    ...(k.label !== undefined ? { label: k.label } : {}),
  };
}

async function run(argv: string[], io: CliIo, deps: BundleCommandDeps): Promise<number> {
  const [sub, ...rest] = argv;
  const { values: v, positionals } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      'secret-store': { type: 'string' },
      profile: { type: 'string' },
      cpus: { type: 'string' },
      'cpu-signature': { type: 'string' },
      'vmsa-variant': { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      firmware: { type: 'string' },
      'trust-key': { type: 'string', multiple: true },
      id: { type: 'string' },
      name: { type: 'string' },
      approval: { type: 'string' },
      label: { type: 'string' },
      replace: { type: 'boolean' },
    },
  });
  const positional = (what: string): string => {
    if (positionals.length !== 1) throw new CliError(`bundle ${sub} takes one ${what}`);
    return positionals[0]!;
  };
  const dataDirOpt = v['data-dir'] ?? io.env.SEV_ATTEST_DATA_DIR;
  const dataDir = (required: boolean): string | undefined => {
    if (dataDirOpt === undefined || dataDirOpt === '') {
      if (!required) return undefined;
      // The app's own data directory, as `npm run app` and the desktop app use it.
      const dir = appDataDir(io.env);
      io.err(`sev-attest bundle: using the app's data directory ${dir} (--data-dir DIR for another)\n`);
      return dir;
    }
    return resolve(io.cwd, dataDirOpt);
  };
  const storeKind = v['secret-store'] ?? 'keychain';
  if (storeKind !== 'keychain' && storeKind !== 'memory') {
    throw new CliError(`--secret-store must be keychain or memory, got '${storeKind}'`);
  }
  const secrets = deps.secretStore ?? createSecretStore(storeKind);
  const open = (withAudit = false) => openStores(dataDir(true)!, secrets, withAudit);

  switch (sub) {
    case 'export': {
      if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
      if (!v.profile) throw new CliError('--profile VM is required');
      const format = (v.format ?? 'native') as ExportFormat;
      if (!EXPORT_FORMATS.includes(format)) {
        throw new CliError(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got '${v.format}'`);
      }
      const selection: MatrixSelection = {};
      if (v.cpus !== undefined) selection.cpuCounts = parseCpuList(v.cpus);
      if (v['cpu-signature'] !== undefined) selection.cpuSignatures = parseCpuSignatures(v['cpu-signature']);
      if (v['vmsa-variant'] !== undefined) selection.vmsaVariants = parseVmsaVariants(v['vmsa-variant']);
      const s = open();
      try {
        const r = await s.service.exportProfile(v.profile, {
          selection,
          format,
          ...(v.firmware !== undefined ? { firmwarePath: resolve(io.cwd, v.firmware) } : {}),
        });
        if (v.out !== undefined) {
          const out = resolve(io.cwd, v.out);
          writeFileSync(out, r.file.text, { mode: format === 'vqsv' ? 0o755 : 0o644 });
          if (format === 'vqsv') chmodSync(out, 0o755);
          io.err(
            `sev-attest bundle: wrote ${out} (${r.document.body.rows.length} row(s), signed by ${r.document.signature!.fingerprint})\n`,
          );
        } else {
          io.out(r.file.text);
        }
      } finally {
        await s.close();
      }
      return 0;
    }
    case 'verify': {
      const file = resolve(io.cwd, positional('FILE'));
      const extra = trustKeys(v['trust-key'], io.cwd);
      const dir = dataDir(false);
      const stored = dir ? open().trustedKeys.list().map(storedToTrusted) : [];
      const result = verifyBundle(new Uint8Array(readFileSync(file)), [...stored, ...extra]);
      const b = result.body;
      io.out(
        `OK: signature valid, signer ${result.signer.fingerprint}${result.signer.label ? ` (${result.signer.label})` : ''}\n` +
          `vm ${b.vm.id} (${b.vm.name}), ${b.scheme}, policy 0x${b.policy.toString(16).padStart(4, '0')}, ` +
          `${b.rows.length} row(s), firmware ${b.firmware.sha256}, created ${b['created-at']}\n`,
      );
      if (b.scheme === 'amd-sev-snp') io.out(describeSnpBundle(b));
      return 0;
    }
    case 'import': {
      const file = resolve(io.cwd, positional('FILE'));
      if (v.approval !== undefined && v.approval !== 'manual' && v.approval !== 'auto') {
        throw new CliError(`--approval must be manual or auto, got '${v.approval}'`);
      }
      const extra = trustKeys(v['trust-key'], io.cwd);
      const s = open(true);
      try {
        const r = await s.service.importBundle(new Uint8Array(readFileSync(file)), {
          extraTrusted: extra,
          ...(v.id !== undefined ? { vmId: v.id } : {}),
          ...(v.name !== undefined ? { name: v.name } : {}),
          ...(v.approval !== undefined ? { approval: v.approval as 'manual' | 'auto' } : {}),
        });
        const count = r.profile.firmware.kind === 'digests' ? r.profile.firmware.launchDigests.length : 0;
        const what = r.profile.scheme === 'amd-sev-snp' ? 'SEV-SNP measurement(s)' : 'launch digest(s)';
        io.out(
          `imported ${r.profile.id}: ${count} ${what} from ${r.rows} row(s), signer ${r.signer.fingerprint}\n`,
        );
        for (const w of r.warnings) io.err(`sev-attest bundle: warning: ${w}\n`);
      } finally {
        await s.close();
      }
      return 0;
    }
    case 'keygen': {
      const s = open();
      const k = await s.service.generateSigningKey({ replace: v.replace === true });
      if (!k.created) {
        io.err('sev-attest bundle: a signing key exists already (use --replace to make a new one)\n');
      }
      if (secrets.kind === 'memory') {
        io.err('sev-attest bundle: --secret-store memory: this key is lost when the command exits\n');
      }
      io.out(`fingerprint ${k.fingerprint}\npublic-key ${k.publicKey}\n`);
      return 0;
    }
    case 'key': {
      const s = open();
      const k = await s.service.signingKey();
      if (!k) throw new CliError('no signing key yet: run `sev-attest bundle keygen`', 1);
      io.out(`fingerprint ${k.fingerprint}\npublic-key ${k.publicKey}\n`);
      return 0;
    }
    case 'trust': {
      const key = parseTrustedKey(readKeyArg(positional('KEY'), io.cwd), v.label);
      const entry = open().trustedKeys.add(key);
      io.out(`trusted ${entry.fingerprint}${entry.label ? ` (${entry.label})` : ''}\n`);
      return 0;
    }
    case 'untrust': {
      const fp = positional('FINGERPRINT');
      if (!open().trustedKeys.remove(fp)) throw new CliError(`${fp} was not trusted`, 1);
      io.out(`untrusted ${fp}\n`);
      return 0;
    }
    case 'trusted': {
      for (const k of open().trustedKeys.list()) {
        io.out(
          `${k.fingerprint}  ${k.publicKey ? 'key' : 'fingerprint-only'}  ${k.addedAt}  ${k.label ?? ''}\n`,
        );
      }
      return 0;
    }
    case undefined:
      throw new CliError(`a subcommand is required\n${usage}`);
    default:
      throw new CliError(
        `unknown subcommand '${sub}' (export, verify, import, keygen, key, trust, untrust, trusted)`,
      );
  }
}

/** The command with injectable dependencies (tests pass an in-memory secret store). */
export function makeBundleCommand(deps: BundleCommandDeps = {}): CliCommand {
  return {
    name: 'bundle',
    summary: 'export, sign, verify and import measurement bundles; key, trust, untrust, trusted',
    usage,
    async run(argv: string[], io: CliIo): Promise<number> {
      try {
        return await run(argv, io, deps);
      } catch (e) {
        if (isBundleError(e) && e.code === 'bundle-bad-selection') throw new CliError(`--${e.message}`, 2);
        if (isBundleError(e)) throw new CliError(`${e.message} (${e.code})`, 1);
        // The bundle service's own refusal (an unknown VM to export).
        if (isDomainError(e) && e.code === 'unknown-vm') throw new CliError(`${e.message} (${e.code})`, 1);
        if (e instanceof SecretStoreUnavailableError) throw new CliError(e.message, 1);
        if (e instanceof TrustedKeyFormatError) throw new CliError(e.message, 2);
        throw e;
      }
    },
  };
}

export const bundleCommand = makeBundleCommand();
