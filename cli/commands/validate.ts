/**
 * `sev-attest validate`: the offline check of an SEV / SEV-ES launch measurement, option- and
 * exit-code-compatible with libvirt's `virt-qemu-sev-validate` (offline mode), plus optional LAUNCH_SECRET
 * packaging into header/payload files (base64 text, as the libvirt tool writes them).
 *
 * Exit codes (libvirt's): 0 OK, 1 measurement mismatch, 2 usage error, 6 any other error (I/O, firmware).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { computeLaunchDigest, prepareFirmware } from '../../app/digest/launch-digest';
import { buildHashesTable, resolveKernelHashes } from '../../app/digest/hashes-table';
import { supportsMeasuredDirectBoot } from '../../app/digest/ovmf';
import { sha256File } from '../../app/digest/stream-hash';
import { VMSA_VARIANTS, type VmsaVariant } from '../../app/digest/vmsa';
import { fromBase64, fromHex, toBase64, toHex } from '../../app/sev/bytes';
import { isSevError, SevError } from '../../app/sev/errors';
import {
  computeMeasurement,
  requireMinimumApi,
  splitMeasurementBlob,
  type ApiVersion,
} from '../../app/sev/measurement';
import { parsePolicy } from '../../app/sev/policy';
import { LUKS_PASSPHRASE_GUID, SecretTable, type SecretPadding } from '../../app/sev/secret';
import { matchMeasurement, releaseSecret } from '../../app/decision';
import type { CliCommand, CliIo } from '../io';

export const EXIT_OK = 0;
export const EXIT_MISMATCH = 1;
export const EXIT_USAGE = 2;
export const EXIT_OTHER = 6;

const usage = `usage: sev-attest validate --measurement B64 --api-major N --api-minor N --build-id N --policy N
                         (--tk FILE | --tik FILE --tek FILE) (--firmware FILE | --launch-digest HEX) [options]

Checks a guest's SEV launch measurement offline, like libvirt's virt-qemu-sev-validate (same options,
output and exit codes: 0 OK, 1 mismatch, 2 usage error, 6 other error).

VM launch state:
  -m, --measurement B64     base64 of the 48-byte LAUNCH_MEASURE result (measure || mnonce)
      --api-major N         firmware SEV API major version
      --api-minor N         firmware SEV API minor version
      --build-id N          firmware build id
      --policy N            guest policy (decimal, or 0x hex)
VM config:
  -f, --firmware FILE       firmware image QEMU loaded
  -k, --kernel FILE         kernel measured via the hashes table
  -r, --initrd FILE         initrd (requires --kernel)
  -e, --cmdline STRING      kernel command line (requires --kernel)
  -n, --num-cpus N          number of vCPUs (SEV-ES)
  -0, --vmsa-cpu0 FILE      VMSA page of the boot CPU (SEV-ES)
  -1, --vmsa-cpu1 FILE      VMSA page of the other CPUs (SEV-ES)
      --cpu-family N --cpu-model N --cpu-stepping N
                            build the VMSAs for this vCPU signature instead (SEV-ES)
      --tik FILE --tek FILE 16-byte TIK and TEK files
      --tk FILE             32-byte TEK || TIK file
Secret injection (files, as the libvirt tool writes them: base64 text):
  -s, --inject-secret ALIAS-OR-GUID:PATH   secret to package (alias: luks-key); repeatable
      --secret-header FILE  where to write the base64 52-byte packet header
      --secret-payload FILE where to write the base64 encrypted secret table
Output:
  -q, --quiet               print nothing; the exit code tells
  -d, --debug               print the computed values on stderr
sev-attest extensions:
      --launch-digest HEX   the 32-byte launch digest (hex or base64) instead of firmware/kernel/VMSAs
      --vmsa-variant V      legacy (default, as libvirt builds them) or kvm-init2 (Linux 6.10+ hosts)
      --min-api MAJOR.MINOR refuse firmware older than this (exit 1)
      --secret-padding P    aligned (default; sevctl) or libvirt9 (16 extra bytes when aligned, as libvirt 9.0)
Not supported (live libvirt domains; use sev-attest-host): -c/--connect, -o/--domain (exit 2).
-i/--insecure and -g/--ignore-config only concern live domains; they are accepted and have no effect.
`;

const options = {
  debug: { type: 'boolean', short: 'd' },
  quiet: { type: 'boolean', short: 'q' },
  measurement: { type: 'string', short: 'm' },
  'api-major': { type: 'string' },
  'api-minor': { type: 'string' },
  'build-id': { type: 'string' },
  policy: { type: 'string' },
  firmware: { type: 'string', short: 'f' },
  kernel: { type: 'string', short: 'k' },
  initrd: { type: 'string', short: 'r' },
  cmdline: { type: 'string', short: 'e' },
  'num-cpus': { type: 'string', short: 'n' },
  'vmsa-cpu0': { type: 'string', short: '0' },
  'vmsa-cpu1': { type: 'string', short: '1' },
  'cpu-family': { type: 'string' },
  'cpu-model': { type: 'string' },
  'cpu-stepping': { type: 'string' },
  tik: { type: 'string' },
  tek: { type: 'string' },
  tk: { type: 'string' },
  connect: { type: 'string', short: 'c' },
  domain: { type: 'string', short: 'o' },
  insecure: { type: 'boolean', short: 'i' },
  'ignore-config': { type: 'boolean', short: 'g' },
  'inject-secret': { type: 'string', short: 's', multiple: true },
  'secret-payload': { type: 'string' },
  'secret-header': { type: 'string' },
  'launch-digest': { type: 'string' },
  'vmsa-variant': { type: 'string' },
  'min-api': { type: 'string' },
  'secret-padding': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; strict: true }>>['values'];

/** A failure with the exit code libvirt's tool uses for it. */
class ValidateError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const usageError = (m: string) => new ValidateError(m, EXIT_USAGE);

const SECRET_ALIASES: Record<string, string> = { 'luks-key': LUKS_PASSPHRASE_GUID };
const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Python int() on a decimal string, then a range check. */
function intArg(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!/^\+?[0-9]+$/.test(v)) throw usageError(`--${name} must be a decimal integer, got '${value}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n > max) throw usageError(`--${name} must be in 0..${max}, got ${value}`);
  return n;
}

/** check_usage() of the libvirt tool, plus our extensions. */
function checkUsage(v: Values): void {
  if (v.domain !== undefined || v.connect !== undefined) {
    throw usageError(
      '--domain/--connect (validating a live libvirt domain) is not supported by sev-attest validate; ' +
        'use sev-attest-host on the host, or pass --measurement, --api-major, --api-minor, --build-id and --policy',
    );
  }
  if (v.tk !== undefined) {
    if (v.tik !== undefined || v.tek !== undefined)
      throw usageError('--tk is mutually exclusive with --tek/--tik');
  } else if (v.tik === undefined || v.tek === undefined) {
    throw usageError('Either --tk or both of --tek/--tik are required');
  }
  for (const name of ['measurement', 'api-major', 'api-minor', 'build-id', 'policy'] as const) {
    if (v[name] === undefined) throw usageError(`--${name} is required`);
  }
  const digestInputs = [
    'firmware',
    'kernel',
    'initrd',
    'cmdline',
    'vmsa-cpu0',
    'vmsa-cpu1',
    'cpu-family',
    'cpu-model',
    'cpu-stepping',
  ] as const;
  if (v['launch-digest'] !== undefined) {
    const clash = digestInputs.find((n) => v[n] !== undefined);
    if (clash) throw usageError(`--launch-digest replaces the firmware/kernel/VMSA inputs; drop --${clash}`);
  } else if (v.firmware === undefined) {
    throw usageError('--firmware (or --launch-digest) is required');
  }
  const secrets = v['inject-secret'] ?? [];
  if (secrets.length > 0) {
    if (v['secret-header'] === undefined) throw usageError('--inject-secret requires --secret-header');
    if (v['secret-payload'] === undefined) throw usageError('--inject-secret requires --secret-payload');
  }
  if (v.kernel === undefined && (v.initrd !== undefined || v.cmdline !== undefined)) {
    throw usageError('--initrd/--cmdline require --kernel');
  }
  const sku = [v['cpu-family'], v['cpu-model'], v['cpu-stepping']];
  const skuGiven = sku.filter((x) => x !== undefined).length;
  if (skuGiven === 0) {
    if (v['vmsa-cpu1'] !== undefined && v['vmsa-cpu0'] === undefined) {
      throw usageError('VMSA for additional CPU also requires VMSA for boot CPU');
    }
  } else {
    if (v['vmsa-cpu0'] !== undefined || v['vmsa-cpu1'] !== undefined) {
      throw usageError('VMSA files are mutually exclusive with CPU SKU');
    }
    if (skuGiven !== 3) throw usageError('CPU SKU needs family, model and stepping for SEV-ES domain');
  }
  if ((v['secret-payload'] === undefined) !== (v['secret-header'] === undefined)) {
    throw usageError('Both --secret-payload and --secret-header are required');
  }
}

async function readExact(path: string, len: number, what: string): Promise<Uint8Array> {
  const b = new Uint8Array(await readFile(path));
  if (b.length !== len) throw usageError(`Expected ${len} bytes in ${what} file, but got ${b.length}`);
  return b;
}

async function loadKeys(v: Values, at: (p: string) => string): Promise<{ tek: Uint8Array; tik: Uint8Array }> {
  if (v.tk !== undefined) {
    const tk = await readExact(at(v.tk), 32, 'TIK/TEK');
    return { tek: tk.slice(0, 16), tik: tk.slice(16) };
  }
  return { tik: await readExact(at(v.tik!), 16, 'TIK'), tek: await readExact(at(v.tek!), 16, 'TEK') };
}

function parseLaunchDigest(s: string): Uint8Array {
  const t = s.trim();
  let b: Uint8Array | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) b = fromHex(t);
  else {
    try {
      b = fromBase64(t);
    } catch {
      b = undefined;
    }
  }
  if (!b || b.length !== 32)
    throw usageError(`--launch-digest must be 32 bytes in hex (64 digits) or base64, got '${s}'`);
  return b;
}

function parseMinApi(s: string | undefined): ApiVersion | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255)
    throw usageError(`--min-api must look like 0.17, got '${s}'`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

async function launchDigest(v: Values, es: boolean, at: (p: string) => string): Promise<Uint8Array> {
  if (v['launch-digest'] !== undefined) return parseLaunchDigest(v['launch-digest']);
  const firmware = at(v.firmware!);
  const kernel = v.kernel !== undefined ? at(v.kernel) : undefined;
  const initrd = v.initrd !== undefined ? at(v.initrd) : undefined;
  const variant = (v['vmsa-variant'] ?? 'legacy') as VmsaVariant;
  if (!VMSA_VARIANTS.includes(variant))
    throw usageError(`--vmsa-variant must be legacy or kvm-init2, got '${variant}'`);

  if (!es) {
    // Like libvirt: plain SEV without a kernel is just the firmware hash, whatever the image is.
    if (kernel === undefined) return sha256File(firmware);
    return (await computeLaunchDigest({ firmware, kernel, initrd, cmdline: v.cmdline, sevEs: false })).digest;
  }
  const cpus = intArg('num-cpus', v['num-cpus'], 4096);
  if (cpus === undefined || cpus < 1)
    throw usageError('Number of virtual CPUs must be specified for SEV-ES domain');
  if (v['cpu-family'] !== undefined) {
    const cpuSignature = {
      family: intArg('cpu-family', v['cpu-family'], 0xfff)!,
      model: intArg('cpu-model', v['cpu-model'], 0xff)!,
      stepping: intArg('cpu-stepping', v['cpu-stepping'], 0xf)!,
    };
    const r = await computeLaunchDigest({
      firmware,
      kernel,
      initrd,
      cmdline: v.cmdline,
      sevEs: true,
      cpus,
      cpuSignature,
      vmsaVariant: variant,
    });
    return r.digest;
  }
  if (v['vmsa-cpu0'] === undefined) throw usageError('VMSA for boot CPU required for SEV-ES domain');
  if (cpus > 1 && v['vmsa-cpu1'] === undefined) {
    throw usageError('VMSA for additional CPUs required for SEV-ES domain with SMP');
  }
  const vmsa0 = await readExact(at(v['vmsa-cpu0']), 4096, 'VMSA CPU 0');
  const vmsa1 =
    v['vmsa-cpu1'] !== undefined ? await readExact(at(v['vmsa-cpu1']), 4096, 'VMSA CPU 1') : undefined;
  const state = await prepareFirmware(firmware);
  const h = state.midstate.copy();
  if (kernel !== undefined) {
    const cap = supportsMeasuredDirectBoot(state.info);
    if (!cap.ok) throw new SevError('firmware-unsupported', `a kernel was given but ${cap.reason}`);
    h.update(buildHashesTable(await resolveKernelHashes({ kernel, initrd, cmdline: v.cmdline })));
  }
  h.update(vmsa0);
  for (let i = 1; i < cpus; i++) h.update(vmsa1!);
  return new Uint8Array(h.digest());
}

async function buildSecretTable(
  specs: string[],
  at: (p: string) => string,
  warn: (m: string) => void,
): Promise<SecretTable> {
  const table = new SecretTable();
  const seen = new Set<string>();
  for (const spec of specs) {
    const bits = spec.split(':');
    if (bits.length !== 2) throw usageError('Expecting ALIAS-OR-GUID:PATH for injected secret');
    const [name, path] = bits as [string, string];
    let guid: string;
    if (GUID_RE.test(name)) guid = name.toLowerCase();
    else if (SECRET_ALIASES[name] !== undefined) guid = SECRET_ALIASES[name];
    else throw usageError(`Secret alias '${name}' is not known`);
    if (seen.has(guid)) throw usageError(`Secret for GUID ${guid} already loaded`);
    seen.add(guid);
    const data = new Uint8Array(await readFile(at(path)));
    if (guid === LUKS_PASSPHRASE_GUID && data[data.length - 1] !== 0) {
      warn(
        `warning: ${path} does not end with a NUL byte; grub's efisecret rejects a disk passphrase that is not zero-terminated`,
      );
    }
    table.add(guid, data);
  }
  return table;
}

async function validate(v: Values, io: CliIo): Promise<number> {
  const quiet = v.quiet === true;
  const debug = (m: string) => {
    if (v.debug) io.err(`[DEBUG]: ${m}\n`);
  };
  const at = (p: string) => resolve(io.cwd, p);
  checkUsage(v);

  const apiMajor = intArg('api-major', v['api-major'], 255)!;
  const apiMinor = intArg('api-minor', v['api-minor'], 255)!;
  const build = intArg('build-id', v['build-id'], 255)!;
  let policy: number;
  try {
    policy = parsePolicy(v.policy!);
  } catch (e) {
    throw usageError(`--policy: ${(e as Error).message}`);
  }
  let blob: Uint8Array;
  try {
    blob = fromBase64(v.measurement!);
  } catch {
    throw usageError('--measurement must be standard base64');
  }
  if (blob.length !== 48) {
    throw usageError(
      `--measurement must decode to 48 bytes (32-byte measure, 16-byte nonce), got ${blob.length}`,
    );
  }
  const minApi = parseMinApi(v['min-api']);
  const padding = (v['secret-padding'] ?? 'aligned') as SecretPadding;
  if (padding !== 'aligned' && padding !== 'libvirt9') {
    throw usageError(`--secret-padding must be aligned or libvirt9, got '${padding}'`);
  }
  const { tek, tik } = await loadKeys(v, at);
  const es = (policy & 0x4) !== 0;
  const digest = await launchDigest(v, es, at);

  const { measure, mnonce } = splitMeasurementBlob(blob);
  debug(`Launch digest(hex): ${toHex(digest)}`);
  debug(`Measurement reported(hex): ${toHex(measure)}`);
  if (v.debug) {
    const computed = computeMeasurement({ tik, apiMajor, apiMinor, build, policy, digest, mnonce });
    debug(`Measurement computed(hex): ${toHex(computed)}`);
  }
  if (minApi) {
    try {
      requireMinimumApi(apiMajor, apiMinor, minApi);
    } catch (e) {
      throw new ValidateError((e as Error).message, EXIT_MISMATCH);
    }
  }
  // The one measurement check (app/decision): only a match yields the VerifiedLaunch a secret needs.
  const { verified } = matchMeasurement(
    { tek, tik },
    { apiMajor, apiMinor, buildId: build, policy, measurement: blob },
    [{ profile: 'command line', expected: [{ digest }] }],
  );
  if (!verified) {
    throw new ValidateError('Measurement does not match, VM is not trustworthy', EXIT_MISMATCH);
  }
  if (!quiet) io.out('OK: Looks good to me\n');

  const secrets = v['inject-secret'] ?? [];
  if (secrets.length > 0) {
    const table = await buildSecretTable(secrets, at, (m) => {
      if (!quiet) io.err(m + '\n');
    });
    const packet = releaseSecret(verified, table.build({ padding }));
    debug(`Header: ${toBase64(packet.header)} (${packet.header.length} bytes)`);
    debug(`Secret: ${toBase64(packet.payload)} (${packet.payload.length} bytes)`);
    await writeFile(at(v['secret-header']!), toBase64(packet.header));
    await writeFile(at(v['secret-payload']!), toBase64(packet.payload));
    if (!quiet) io.out(`OK: Injected ${secrets.length} secrets\n`);
  }
  return EXIT_OK;
}

export const validateCommand: CliCommand = {
  name: 'validate',
  summary: "check a launch measurement offline (libvirt's virt-qemu-sev-validate)",
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    try {
      return await validate(values, io);
    } catch (e) {
      let code = EXIT_OTHER;
      let message: string;
      if (e instanceof ValidateError) {
        code = e.exitCode;
        message = e.message;
      } else if (isSevError(e)) {
        message = `${e.message} (${e.code})`;
      } else if (e instanceof Error) {
        message = e.message;
        if (values.debug && e.stack) io.err(e.stack + '\n');
      } else {
        message = String(e);
      }
      if (!values.quiet) io.err(`ERROR: ${message}\n`);
      return code;
    }
  },
};
