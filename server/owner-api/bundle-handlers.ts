/**
 * The `bundles:*` channels over the running service's BundleService and trusted-key store: preview (the
 * export dialog's table), export, verify (resolves with the refusal so the UI can show the check), import,
 * and the signing key and trusted keys.
 */
import {
  keyFingerprint,
  parseBundleText,
  type BundleBody,
  type BundleDocument,
  type MatrixSelection,
} from '../../app/bundle/bundle';
import { isBundleError } from '../../app/bundle/errors';
import type { ExportFormat } from '../../app/bundle/export';
import type {
  BundleBodyView,
  BundleExportFormat,
  BundleSummary,
  BundleVerification,
  InvokeHandlers,
  ParsedArgs,
  TrustedBundleKey,
} from '../../app/contract/ipc';
import { fromBase64 } from '../../app/sev/bytes';
import { DomainError } from '../../app/errors';
import type { ProfileStore } from '../services/profile-store';
import type { BundleService } from '../services/bundle-service';
import { parseTrustedKey, type StoredTrustedKey, type TrustedKeyStore } from '../services/trusted-keys';

type BundleChannel = Extract<keyof InvokeHandlers, `bundles:${string}`>;

// The contract's lists and views mirror the core's types (the renderer cannot import app/bundle, which uses
// node:crypto); these lines stop compiling when the two drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const formatsAgree: Same<ExportFormat, BundleExportFormat> = true;
void formatsAgree;
const bodyView = (b: BundleBody): BundleBodyView => b;

function selectionOf(s: ParsedArgs<'bundles:preview'>[1]): MatrixSelection {
  const out: MatrixSelection = {};
  if (s.cpuCounts?.length) out.cpuCounts = s.cpuCounts;
  if (s.cpuSignatures?.length) out.cpuSignatures = s.cpuSignatures;
  if (s.vmsaVariants?.length) out.vmsaVariants = s.vmsaVariants;
  return out;
}

function summaryOf(doc: BundleDocument): BundleSummary {
  const b = doc.body;
  return {
    vmId: b.vm.id,
    vmName: b.vm.name,
    scheme: b.scheme,
    policy: b.policy,
    rows: b.rows.length,
    firmwareSha256: b.firmware.sha256,
    createdAt: b['created-at'],
    generator: b.generator,
    ...(doc.signature ? { statedSigner: doc.signature.fingerprint } : {}),
  };
}

function trustedView(k: StoredTrustedKey): TrustedBundleKey {
  return {
    fingerprint: k.fingerprint,
    ...(k.publicKey !== undefined ? { publicKey: k.publicKey } : {}),
    ...(k.label !== undefined ? { label: k.label } : {}),
    addedAt: k.addedAt,
  };
}

/** Checks bundle text against the trusted keys; a refusal is a result (code + message), never a rejection. */
export function verifyForUi(bundles: BundleService, text: string): BundleVerification {
  try {
    const v = bundles.verify(text);
    const who = v.signer.label ? `${v.signer.fingerprint} (${v.signer.label})` : v.signer.fingerprint;
    return {
      ok: true,
      message: `signature intact, signed by a trusted key: ${who}`,
      signer: v.signer,
      summary: summaryOf(v.document),
    };
  } catch (e) {
    const code = isBundleError(e) ? e.code : 'bundle-invalid';
    const message = e instanceof Error ? e.message : String(e);
    let doc: BundleDocument | undefined;
    try {
      doc = parseBundleText(text);
    } catch {
      doc = undefined;
    }
    const out: BundleVerification = { ok: false, code, message, summary: doc ? summaryOf(doc) : null };
    // An intact signature from a stranger: its key is authentic, so the owner may choose to trust it.
    if (code === 'bundle-key-untrusted' && doc?.signature) {
      const publicKey = doc.signature['public-key'];
      out.signer = { fingerprint: keyFingerprint(fromBase64(publicKey)), publicKey };
    }
    return out;
  }
}

/** The handlers of every `bundles:*` channel. */
export function bundleHandlers(deps: {
  bundles: BundleService;
  trustedKeys: TrustedKeyStore;
  profiles: Pick<ProfileStore, 'get'>;
}): Pick<InvokeHandlers, BundleChannel> {
  const { bundles, trustedKeys } = deps;
  return {
    'bundles:preview': async (vmId, selection) =>
      bodyView(await bundles.previewProfile(vmId, { selection: selectionOf(selection) })),
    'bundles:export': async (vmId, selection, format) => {
      const r = await bundles.exportProfile(vmId, { selection: selectionOf(selection), format });
      return {
        fileName: `${vmId}${r.file.extension}`,
        contentType: r.file.contentType,
        text: r.file.text,
        fingerprint: r.document.signature!.fingerprint,
      };
    },
    'bundles:verify': async (text) => verifyForUi(bundles, text),
    'bundles:import': async (text, options) => {
      const r = await bundles.importBundle(text, {
        ...(options?.vmId !== undefined ? { vmId: options.vmId } : {}),
        ...(options?.name !== undefined ? { name: options.name } : {}),
        ...(options?.approval !== undefined ? { approval: options.approval } : {}),
      });
      const vm = deps.profiles.get(r.profile.id);
      if (!vm) throw new DomainError('unknown-vm', `VM ${r.profile.id} was not stored`);
      return { vm, warnings: r.warnings, signer: r.signer, rows: r.rows };
    },
    'bundles:key': async () => (await bundles.signingKey()) ?? null,
    'bundles:keygen': async (options) => bundles.generateSigningKey({ replace: options?.replace === true }),
    'bundles:trusted': async () => trustedKeys.list().map(trustedView),
    'bundles:trust': async (keyText, label) => {
      const key = parseTrustedKey(keyText, label?.trim() ? label.trim() : undefined);
      const stored = trustedKeys.add(key);
      await trustedKeys.flushed();
      return trustedView(stored);
    },
    'bundles:untrust': async (fingerprint) => {
      const removed = trustedKeys.remove(fingerprint);
      await trustedKeys.flushed();
      return removed;
    },
  };
}
