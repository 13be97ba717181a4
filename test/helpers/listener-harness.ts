/**
 * Test harness for the listener: a running headless service on 127.0.0.1:0 and a simulated host that
 * runs the launch and validate flows against it through real HTTP, with the simulated SEV firmware
 * (app/sim) on the host side.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import { SimulatedSevPlatform, type SimulatedGuest } from '../../app/sim/platform';
import { buildHashesTable, resolveKernelHashes } from '../../app/digest/hashes-table';
import { parseOvmfFooter } from '../../app/digest/ovmf';
import { buildVmsaPair, type CpuSignature, type VmsaVariant } from '../../app/digest/vmsa';
import { startService, type RunningService, type ServeOptions } from '../../server/serve/serve';
import { InMemorySecretStore } from '../../server/services/secret-store';

export const FIRMWARE_PATH = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin');
export const FIRMWARE = new Uint8Array(fs.readFileSync(FIRMWARE_PATH));
export const MILAN: CpuSignature = { family: 25, model: 1, stepping: 1 };
import { OWNER_TOKEN } from './http';
export { OWNER_TOKEN };

let cachedPlatform: SimulatedSevPlatform | undefined;
/** One simulated Naples platform per test file (RSA-2048 keys; fast to create). */
export function platform(): SimulatedSevPlatform {
  cachedPlatform ??= SimulatedSevPlatform.create({ generation: 'naples', seed: 'listener-tests' });
  return cachedPlatform;
}

export function tmpDir(prefix = 'sev-listener-'): string {
  return fs.mkdtempSync(join(os.tmpdir(), prefix));
}

export interface Harness {
  svc: RunningService;
  dataDir: string;
  close(): Promise<void>;
}

/** Starts a service trusting the simulated platform's ASK||ARK (unless trustSim is false). */
export async function startHarness(
  opts: Partial<ServeOptions> & { trustSim?: boolean; dataDir?: string } = {},
): Promise<Harness> {
  const dataDir = opts.dataDir ?? tmpDir();
  const askArk = join(dataDir, 'sim-ask-ark.cert');
  fs.writeFileSync(askArk, platform().askArk);
  const { trustSim, ...rest } = opts;
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    trustCa: trustSim === false ? [] : [askArk],
    secretStore: new InMemorySecretStore(),
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    ...rest,
  });
  return { svc, dataDir, close: () => svc.close() };
}

export { request, type HttpResult } from './http';
import { request, type HttpResult } from './http';

export interface VmSetup {
  id: string;
  sevEs?: boolean;
  cpuCounts?: number[];
  cpuSignatures?: CpuSignature[];
  vmsaVariants?: VmsaVariant[];
  kernel?: { kernelHash: string; initrdHash?: string; cmdline?: string };
  approval?: 'auto' | 'manual';
  passphrase?: string;
  extra?: Record<string, unknown>;
  policy?: number;
}

/** Uploads the firmware (once) and registers a VM through the owner API. */
export async function registerVm(
  h: Pick<Harness, 'svc'>,
  vm: VmSetup,
  token = OWNER_TOKEN,
): Promise<HttpResult> {
  const up = await request(h.svc.url, 'PUT', '/v1/artifacts', {
    token,
    body: Buffer.from(FIRMWARE),
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (up.status !== 200) throw new Error(`artifact upload: ${up.status} ${up.text}`);
  const policy = vm.policy ?? (vm.sevEs ? 0x05 : 0x01);
  const body: Record<string, unknown> = {
    name: `VM ${vm.id}`,
    scheme: vm.sevEs ? 'amd-sev-es' : 'amd-sev',
    policy,
    'firmware-artifact': up.json.sha256,
    approval: vm.approval ?? 'auto',
    secrets: [{ type: 'luks-passphrase', passphrase: vm.passphrase ?? `passphrase of ${vm.id}` }],
    ...(vm.cpuCounts ? { 'cpu-counts': vm.cpuCounts } : {}),
    ...(vm.sevEs ? { 'cpu-signature': vm.cpuSignatures ?? [MILAN] } : {}),
    ...(vm.vmsaVariants ? { 'vmsa-variant': vm.vmsaVariants } : {}),
    ...(vm.kernel
      ? {
          'kernel-hash': vm.kernel.kernelHash,
          ...(vm.kernel.initrdHash ? { 'initrd-hash': vm.kernel.initrdHash } : {}),
          ...(vm.kernel.cmdline !== undefined ? { cmdline: vm.kernel.cmdline } : {}),
        }
      : {}),
    ...vm.extra,
  };
  return request(h.svc.url, 'PUT', `/v1/vm/${vm.id}`, { body, token });
}

/** The launch request body a host sends for the simulated platform. */
export function launchBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const p = platform();
  return { pdh: toBase64(p.pdh), 'cert-chain': toBase64(p.certChain), cek: toBase64(p.signedCek), ...extra };
}

/** What QEMU would feed the firmware for this VM on the host: firmware, hashes table, VMSAs. */
export async function runGuestLaunch(
  guest: SimulatedGuest,
  g: {
    sevEs: boolean;
    cpus?: number;
    cpuSignature?: CpuSignature;
    vmsaVariant?: VmsaVariant;
    kernel?: VmSetup['kernel'];
  },
): Promise<void> {
  guest.launchUpdateData(FIRMWARE);
  if (g.kernel) {
    const h = await resolveKernelHashes({
      kernel: { sha256hex: g.kernel.kernelHash },
      ...(g.kernel.initrdHash ? { initrd: { sha256hex: g.kernel.initrdHash } } : {}),
      ...(g.kernel.cmdline !== undefined ? { cmdline: g.kernel.cmdline } : {}),
    });
    guest.launchUpdateData(buildHashesTable(h));
  }
  if (g.sevEs) {
    const reset = parseOvmfFooter(FIRMWARE).resetAddress!;
    const { bsp, ap } = buildVmsaPair(reset, g.cpuSignature ?? MILAN, g.vmsaVariant ?? 'kvm-init2');
    guest.launchUpdateVmsa(bsp);
    for (let i = 1; i < (g.cpus ?? 1); i++) guest.launchUpdateVmsa(ap);
  }
}

export interface FlowResult {
  launch: HttpResult;
  validate?: HttpResult;
  guest?: SimulatedGuest;
  measurement?: string;
  secret?: Map<string, string>;
}

/**
 * The whole host side: launch (VM path or /v1/launch), LAUNCH_START on the simulated firmware, the
 * measured launch, LAUNCH_MEASURE, validate, LAUNCH_SECRET (decrypts the released table).
 */
export async function hostFlow(
  h: Pick<Harness, 'svc'>,
  o: {
    vmId?: string;
    sevEs?: boolean;
    policy?: number;
    cpus?: number;
    cpuSignature?: CpuSignature;
    vmsaVariant?: VmsaVariant;
    kernel?: VmSetup['kernel'];
    launchExtra?: Record<string, unknown>;
    tamperMeasurement?: (m: Uint8Array) => void;
    validateExtra?: Record<string, unknown>;
    validateByVm?: boolean;
    base?: string;
    /** Where the validate goes (default: base): another replica of a scale-out deployment. */
    validateBase?: string;
    /** Extra headers on both requests (Connection: close, so a balancer spreads them). */
    headers?: Record<string, string>;
    /** Runs between LAUNCH_MEASURE and the validate (a replica killed meanwhile). */
    beforeValidate?: () => Promise<void>;
  },
): Promise<FlowResult> {
  const base = o.base ?? h.svc.url;
  const policy = o.policy ?? (o.sevEs ? 0x05 : 0x01);
  const path = o.vmId ? `/v1/vm/${o.vmId}/launch` : '/v1/launch';
  const launch = await request(base, 'POST', path, {
    body: launchBody({ policy, ...o.launchExtra }),
    token: null,
    ...(o.headers ? { headers: o.headers } : {}),
  });
  if (launch.status !== 200) return { launch };
  const p = platform();
  const guest = p.launchStart({
    policy: launch.json.policy,
    ownerCert: fromBase64(launch.json['owner-cert']),
    session: fromBase64(launch.json.session),
  });
  await runGuestLaunch(guest, { sevEs: o.sevEs ?? false, ...o });
  const m = guest.launchMeasure();
  o.tamperMeasurement?.(m);
  const measurement = toBase64(m);
  const vpath =
    o.validateByVm && o.vmId
      ? `/v1/vm/${o.vmId}/validate`
      : `/v1/connections/${launch.json.connection}/validate`;
  await o.beforeValidate?.();
  const validate = await request(o.validateBase ?? base, 'POST', vpath, {
    token: null,
    ...(o.headers ? { headers: o.headers } : {}),
    body: {
      'api-major': p.apiMajor,
      'api-minor': p.apiMinor,
      'build-id': p.build,
      policy,
      measurement,
      ...(o.sevEs && o.cpus ? { 'cpu-count': o.cpus } : {}),
      ...o.validateExtra,
    },
  });
  if (validate.status !== 200) return { launch, validate, guest, measurement };
  const out = guest.launchSecret({
    header: fromBase64(validate.json['secret-header']),
    payload: fromBase64(validate.json['secret-table']),
  });
  const secret = new Map(out.entries.map((e) => [e.guid, Buffer.from(e.data).toString('utf8')]));
  return { launch, validate, guest, measurement, secret };
}
