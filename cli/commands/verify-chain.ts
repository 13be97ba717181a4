/** `sev-attest verify-chain`: checks an SEV platform's certificates and anchors them to AMD's roots. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CERT_CHAIN_SIZE, splitCertChain, verifyChain, verifyPlatformLinks } from '../../app/sev/chain';
import { isEmptySlot, parseSevCert, SEV_CERT_SIZE } from '../../app/sev/cert';
import { AMD_CERT_SIZE_2048, AMD_CERT_SIZE_4096 } from '../../app/sev/amd-cert';
import { anchorName, TrustStore } from '../../app/sev/roots';
import { CHIP_ID_SIZE, DiskCekCache, KdsClient, KDS_DEFAULT_BASE_URL } from '../../app/sev/kds';
import { fromBase64, fromHex, toHex } from '../../app/sev/bytes';
import { SevError } from '../../app/sev/errors';
import { CliError, type CliCommand, type CliIo } from '../io';

/** Exit codes besides 0 (trusted) and 2 (usage). */
export const VERIFY_CHAIN_EXIT = { notTrusted: 1, cekUnsigned: 3, kdsUnavailable: 4 } as const;

const usage = `usage: sev-attest verify-chain --pdh FILE --cert-chain FILE [options]

Verifies an AMD SEV platform's certificates (QEMU query-sev-capabilities / virsh nodesevinfo) and
anchors them to AMD's pinned roots (Naples, Rome, Milan, Genoa, Turin):
ARK -> ASK -> CEK -> PEK -> PDH and OCA -> PEK. Files may be raw binary or base64 text.

  --pdh FILE          the platform's PDH certificate (2084 bytes; libvirt 'pdh')
  --cert-chain FILE   PEK || OCA || CEK (6252 bytes; libvirt 'cert-chain')
  --cek FILE          the ASK-signed CEK (2084 bytes), needed when the chain's CEK is unsigned
                      (current firmware exports it unsigned)
  --cpu-id FILE|HEX   the chip id (libvirt 'cpu0-id', 64 bytes: raw, base64 or hex file, or 128 hex
                      digits); with it the signed CEK is downloaded from AMD's key server
  --kds-url URL       key server base URL (default ${KDS_DEFAULT_BASE_URL}); needs --cpu-id
  --cek-cache DIR     keep downloaded CEKs in DIR (one file per chip id)
  --trust-ca FILE     also trust this ASK || ARK file (AMD's ask_ark_<gen>.cert layout; a lab or a
                      simulated platform); may be repeated
  --json              print a JSON object on stdout

Exit status: 0 trusted (prints the AMD generation); 1 not trusted or invalid (prints the failing
link); 2 usage error; 3 the chain's CEK is unsigned and no signed CEK was given (PEK -> PDH and
OCA -> PEK verified; give --cek or --cpu-id); 4 the key server could not deliver the signed CEK.
`;

const options = {
  pdh: { type: 'string' },
  'cert-chain': { type: 'string' },
  cek: { type: 'string' },
  'cpu-id': { type: 'string' },
  'kds-url': { type: 'string' },
  'cek-cache': { type: 'string' },
  'trust-ca': { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

/**
 * Reads a file holding `sizes` bytes either raw or as base64 text (libvirt gives base64). Raw is
 * tried first: a file of exactly the expected size is taken as is.
 */
export async function readBinaryOrBase64(file: string, what: string, sizes: number[]): Promise<Uint8Array> {
  const raw = new Uint8Array(await readFile(file));
  if (sizes.includes(raw.length)) return raw;
  const text = Buffer.from(raw).toString('latin1').replace(/\s+/g, '');
  let decoded: Uint8Array | undefined;
  try {
    decoded = fromBase64(text);
  } catch {
    decoded = undefined;
  }
  if (decoded && sizes.includes(decoded.length)) return decoded;
  const want = sizes.join(' or ');
  throw new CliError(
    `${what} (${file}): expected ${want} bytes, raw or base64; got ${raw.length} bytes` +
      (decoded ? ` (${decoded.length} after base64 decoding)` : ''),
  );
}

/** The chip id from 128 hex digits, or a file holding it raw (64 bytes), as hex text, or as base64. */
async function readChipId(value: string, cwd: string): Promise<Uint8Array> {
  if (/^[0-9a-fA-F]{128}$/.test(value.trim())) return fromHex(value.trim());
  const file = resolve(cwd, value);
  // Hex digits that are not a file: a chip id of the wrong length, not a missing file.
  if (/^[0-9a-fA-F]+$/.test(value.trim()) && !existsSync(file)) {
    throw new CliError(
      `--cpu-id ${value.trim()}: a chip id is 128 hex digits (64 bytes); this is ${value.trim().length}`,
    );
  }
  const raw = new Uint8Array(await readFile(file));
  if (raw.length === CHIP_ID_SIZE) return raw;
  const text = Buffer.from(raw).toString('latin1').replace(/\s+/g, '');
  if (/^[0-9a-fA-F]{128}$/.test(text)) return fromHex(text);
  try {
    const d = fromBase64(text);
    if (d.length === CHIP_ID_SIZE) return d;
  } catch {
    // fall through to the error below
  }
  throw new CliError(
    `--cpu-id (${file}): expected the 64-byte chip id (raw, 128 hex digits or base64), got ${raw.length} bytes`,
  );
}

function chainCekUnsigned(certChain: Uint8Array): boolean {
  try {
    const cek = parseSevCert(splitCertChain(certChain).cek);
    return isEmptySlot(cek.sigs[0]) && isEmptySlot(cek.sigs[1]);
  } catch {
    return false; // verifyChain reports the exact problem
  }
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
  if (!v.pdh) throw new CliError('--pdh FILE is required');
  if (!v['cert-chain']) throw new CliError('--cert-chain FILE is required');
  if (v['kds-url'] !== undefined && v['cpu-id'] === undefined) throw new CliError('--kds-url needs --cpu-id');
  if (v['cek-cache'] !== undefined && v['cpu-id'] === undefined)
    throw new CliError('--cek-cache needs --cpu-id');
  if (v['kds-url'] !== undefined && !/^https?:\/\/[^\s]+$/.test(v['kds-url'])) {
    throw new CliError(`--kds-url must be an http(s) URL, got '${v['kds-url']}'`);
  }
  const path = (p: string) => resolve(io.cwd, p);
  const pdh = await readBinaryOrBase64(path(v.pdh), '--pdh', [SEV_CERT_SIZE]);
  const certChain = await readBinaryOrBase64(path(v['cert-chain']), '--cert-chain', [CERT_CHAIN_SIZE]);
  let cek = v.cek !== undefined ? await readBinaryOrBase64(path(v.cek), '--cek', [SEV_CERT_SIZE]) : undefined;
  const chipId = v['cpu-id'] !== undefined ? await readChipId(v['cpu-id'], io.cwd) : undefined;

  const trust = TrustStore.pinned();
  for (const f of v['trust-ca'] ?? []) {
    const bytes = await readBinaryOrBase64(path(f), '--trust-ca', [
      2 * AMD_CERT_SIZE_2048,
      2 * AMD_CERT_SIZE_4096,
    ]);
    try {
      trust.addAskArk(bytes, f);
    } catch (e) {
      if (e instanceof SevError) throw new CliError(`--trust-ca ${f}: ${e.message}`);
      throw e;
    }
  }

  const fail = (code: number, e: SevError, extra: Record<string, unknown> = {}): number => {
    if (v.json) {
      io.out(JSON.stringify({ trusted: false, code: e.code, reason: e.message, ...extra }, null, 2) + '\n');
    }
    io.err(`sev-attest verify-chain: not trusted: ${e.message} (${e.code})\n`);
    return code;
  };

  let fromKds = false;
  if (cek === undefined && chipId !== undefined && chainCekUnsigned(certChain)) {
    try {
      // Only worth a download when the platform's own links hold.
      verifyPlatformLinks({ pdh, certChain });
    } catch (e) {
      if (e instanceof SevError) return fail(VERIFY_CHAIN_EXIT.notTrusted, e);
      throw e;
    }
    const kds = new KdsClient({
      baseUrl: v['kds-url'] ?? KDS_DEFAULT_BASE_URL,
      cache: v['cek-cache'] !== undefined ? new DiskCekCache(path(v['cek-cache'])) : undefined,
    });
    try {
      cek = await kds.getCek(chipId);
      fromKds = true;
    } catch (e) {
      if (e instanceof SevError) {
        return fail(VERIFY_CHAIN_EXIT.kdsUnavailable, e, { platformLinksVerified: true });
      }
      throw e;
    }
  }

  try {
    const r = verifyChain({ pdh, certChain, cek }, trust);
    const api = `${r.apiMajor}.${r.apiMinor}`;
    const cekSource = fromKds ? 'kds' : r.cekSource;
    if (v.json) {
      io.out(
        JSON.stringify(
          {
            trusted: true,
            anchor: r.anchor,
            generation: r.generation ?? null,
            api,
            cekSource,
            chipId: chipId ? toHex(chipId).toUpperCase() : undefined,
          },
          null,
          2,
        ) + '\n',
      );
    } else {
      const root = r.generation ? `AMD ${r.generation} root` : `extra root ${anchorName(r.anchor)}`;
      const src = { chain: 'the cert-chain', supplied: '--cek', kds: 'the key server' }[cekSource];
      io.out(`trusted: ${r.generation ?? anchorName(r.anchor)}\n`);
      io.out(`  anchored to the ${root}; PDH firmware API ${api}; signed CEK from ${src}\n`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof SevError)) throw e;
    if (e.code === 'cek-unsigned') {
      const code = fail(VERIFY_CHAIN_EXIT.cekUnsigned, e, { platformLinksVerified: true });
      io.err('  give --cek FILE (the ASK-signed CEK) or --cpu-id (to download it from the key server)\n');
      return code;
    }
    return fail(VERIFY_CHAIN_EXIT.notTrusted, e);
  }
}

export const verifyChainCommand: CliCommand = {
  name: 'verify-chain',
  summary: "verify a platform's PDH / cert-chain against AMD's pinned roots",
  usage,
  run,
};
