/**
 * The first-run demo for a newcomer with no profile and no firmware: `demo:run` without a vmId creates
 * (or reuses) the profile `demo` — SEV-ES, 2 vCPUs, EPYC-Milan, manual approval — with the shipped demo
 * firmware (assets/demo/OVMF.amdsev-trimmed.fd, sevctl's trimmed AmdSev image) imported into the
 * ArtifactStore and a demo LUKS passphrase in the SecretStore. The demo host then launches it like any
 * other profile (server/services/demo-host.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { LUKS_PASSPHRASE_GUID, secretAccount, type SecretRef, type VmProfile } from '../../app/profile';
import { findCpuPreset } from '../../app/digest/cpu-presets';
import type { ArtifactStore } from './artifact-store';
import { DemoError } from './demo-host';
import type { OwnerService } from './owner-service';
import type { ProfileStore } from './profile-store';
import type { SecretService } from './secret-service';
import { canKeepInMemory, SecretStoreUnavailableError } from './secret-store';

export const DEMO_VM_ID = 'demo';
/** The demo profile's name: says what it is wherever profiles are listed. */
export const DEMO_PROFILE_NAME = 'Demo VM (simulated host; not a real secret)';
/** The demo's LUKS passphrase: visible as what it is if anyone reveals it. */
export const DEMO_PASSPHRASE = 'demo passphrase — not a real secret';
/** The demo passphrase's label when no keychain could take it (kept in this process's memory). */
export const DEMO_SECRET_LABEL_IN_MEMORY = 'demo passphrase (kept in memory: no OS keychain)';
export const DEMO_FIRMWARE_FILE = 'OVMF.amdsev-trimmed.fd';
/** SHA-256 of the shipped demo firmware (assets/demo/README.md). */
export const DEMO_FIRMWARE_SHA256 = '2f6fc6065f4abc131eb4fb2b5090a542636eae84a94c0db0fdd5f405cb372ff5';
/** Policy 0x5: NODBG and ES (debugging off, SEV-ES required). */
const DEMO_POLICY = 0x5;

/** What the setup needs of the running service (server/serve/serve.ts RunningService). */
export interface DemoSetupService {
  profiles: Pick<ProfileStore, 'get' | 'put' | 'flushed'>;
  /** The raw store: the demo keeps its passphrase in memory through it when no keychain takes it. */
  secretStore?: object;
  artifacts: Pick<ArtifactStore, 'has' | 'importFile'>;
  secrets: Pick<SecretService, 'set' | 'has'>;
  owner: Pick<OwnerService, 'saveProfile'>;
}

function isPackageRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return pkg.name === 'sev-attest';
  } catch {
    return false;
  }
}

/**
 * Where the demo firmware is: `<resources>/demo/` in the packaged app (electron-builder extraResources),
 * else `assets/demo/` in the sev-attest package root above `from` (sources, out/main, dist/ bundles).
 */
export function findDemoFirmware(
  from: string = __dirname,
  resourcesPath: string | undefined = (process as { resourcesPath?: string }).resourcesPath,
): string | undefined {
  if (resourcesPath) {
    const packaged = join(resourcesPath, 'demo', DEMO_FIRMWARE_FILE);
    if (existsSync(packaged)) return packaged;
  }
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const candidate = join(dir, 'assets', 'demo', DEMO_FIRMWARE_FILE);
    if (isPackageRoot(dir) && existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The demo profile, created on first use (firmware imported, demo passphrase stored) and reused after:
 * its firmware is imported again when missing, and the demo passphrase is put back when the profile is
 * the one created here and its value is gone (a memory secret store after a restart). A profile `demo`
 * the owner made is run as it is. DemoService runs the calls of one service one after the other.
 */
export async function ensureDemoProfile(
  service: DemoSetupService,
  firmwarePath: string | undefined = findDemoFirmware(),
): Promise<{ profile: VmProfile; created: boolean }> {
  const importFirmware = async () => {
    if (!firmwarePath || !existsSync(firmwarePath)) {
      throw new DemoError(
        'demo-not-possible',
        `the demo firmware (${DEMO_FIRMWARE_FILE}, shipped in assets/demo) is missing from this installation`,
      );
    }
    return service.artifacts.importFile(firmwarePath, {
      name: `${DEMO_FIRMWARE_FILE} (demo)`,
      kind: 'firmware',
    });
  };

  const existing = service.profiles.get(DEMO_VM_ID);
  if (existing) {
    const fw = existing.firmware;
    if (fw.kind === 'artifact' && !service.artifacts.has(fw.sha256) && fw.sha256 === DEMO_FIRMWARE_SHA256) {
      await importFirmware();
    }
    let profile = existing;
    if (existing.name === DEMO_PROFILE_NAME) {
      const luks = existing.secrets.find((s) => s.guid === LUKS_PASSPHRASE_GUID);
      // A keychain that cannot be read counts as "value gone": the demo keeps its own in memory then.
      const stored =
        luks !== undefined &&
        (await service.secrets.has(DEMO_VM_ID, LUKS_PASSPHRASE_GUID).catch((e: unknown) => {
          if (e instanceof SecretStoreUnavailableError) return false;
          throw e;
        }));
      if (!stored) profile = await storeDemoSecret(service, existing);
    }
    return { profile, created: false };
  }

  const fw = await importFirmware();
  const milan = findCpuPreset('EPYC-Milan')!;
  const { profile } = await service.owner.saveProfile({
    id: DEMO_VM_ID,
    name: DEMO_PROFILE_NAME,
    scheme: 'amd-sev-es',
    policy: DEMO_POLICY,
    cpuCounts: [2],
    cpuSignatures: [{ family: milan.family, model: milan.model, stepping: milan.stepping }],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size, name: fw.name },
    approval: 'manual',
    secrets: [],
  });
  return { profile: await storeDemoSecret(service, profile), created: true };
}

/** The demo passphrase: its value in the secret store and its reference in the profile (audited). */
async function storeDemoSecret(service: DemoSetupService, profile: VmProfile): Promise<VmProfile> {
  const value = () => new TextEncoder().encode(DEMO_PASSPHRASE);
  try {
    const { profile: updated } = await service.secrets.set(
      profile.id,
      { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', label: 'demo passphrase', value: value() },
      { via: 'demo' },
    );
    return updated;
  } catch (e) {
    // No keychain here: the demo's own (not secret) passphrase stays in memory, and says so.
    const store = service.secretStore;
    if (!(e instanceof SecretStoreUnavailableError) || !store || !canKeepInMemory(store)) throw e;
    await store.setInMemory(secretAccount(profile.id, LUKS_PASSPHRASE_GUID), value());
    const ref: SecretRef = {
      guid: LUKS_PASSPHRASE_GUID,
      kind: 'luks-passphrase',
      label: DEMO_SECRET_LABEL_IN_MEMORY,
    };
    const stored = service.profiles.put({
      ...profile,
      secrets: [...profile.secrets.filter((s) => s.guid !== LUKS_PASSPHRASE_GUID), ref],
    });
    await service.profiles.flushed();
    return stored;
  }
}
