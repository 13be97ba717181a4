/**
 * The first-run demo from an empty data directory: `demo:run` without a vmId (through the contract's
 * schema and createInvokeHandlers, as Electron IPC and the browser bridge call it) creates the `demo`
 * profile with the shipped demo firmware and passphrase, waits for the owner's approval like any launch,
 * and the simulated guest decrypts the passphrase; a second run reuses everything; the shipped firmware is
 * found from the sources, the built bundles and a packaged app's resources.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invokeArgSchemas, type InvokeHandlers, type InvokeResult } from '../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID, secretAccount } from '../../app/profile';
import {
  DEMO_FIRMWARE_FILE,
  DEMO_FIRMWARE_SHA256,
  DEMO_PASSPHRASE,
  DEMO_PROFILE_NAME,
  DEMO_VM_ID,
  ensureDemoProfile,
  findDemoFirmware,
} from '../../server/services/demo-setup';
import { startHarness, tmpDir, type Harness } from '../helpers/listener-harness';
import { ownerHandlers } from '../helpers/ipc';

const SHIPPED = join(process.cwd(), 'assets/demo', DEMO_FIRMWARE_FILE);

let h: Harness;
let handlers: InvokeHandlers;

async function runDemo(args: unknown[], decision: 'approve' | 'deny' = 'approve') {
  const decided = new Promise<void>((resolve) => {
    const off = h.svc.approvals.subscribe((a) => {
      if (a.state === 'pending') {
        off();
        setTimeout(() => {
          h.svc.owner.decide(a.id, decision);
          resolve();
        }, 10);
      }
    });
  });
  const parsed = invokeArgSchemas['demo:run'].parse(args) as Parameters<InvokeHandlers['demo:run']>;
  const [result] = await Promise.all([handlers['demo:run'](...parsed), decided]);
  return result as InvokeResult<'demo:run'>;
}

beforeAll(async () => {
  h = await startHarness({ trustSim: false });
  handlers = ownerHandlers(h.svc, { mode: 'browser' });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('the shipped demo firmware', () => {
  it("is sevctl's trimmed AmdSev image, byte for byte", () => {
    const bytes = fs.readFileSync(SHIPPED);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(DEMO_FIRMWARE_SHA256);
    const fixture = fs.readFileSync(
      'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9',
    );
    expect(bytes.equals(fixture)).toBe(true);
    expect(fs.readFileSync('assets/demo/README.md', 'utf8')).toContain('v0.6.2');
  });

  it("is found from the sources, from dist/ and out/main, and in a packaged app's resources first", () => {
    for (const from of ['server/services', 'dist/chunks', 'out/main', '.']) {
      expect(findDemoFirmware(join(process.cwd(), from), undefined)).toBe(SHIPPED);
    }
    const resources = tmpDir('demo-resources-');
    fs.mkdirSync(join(resources, 'demo'));
    fs.copyFileSync(SHIPPED, join(resources, 'demo', DEMO_FIRMWARE_FILE));
    expect(findDemoFirmware('/', resources)).toBe(join(resources, 'demo', DEMO_FIRMWARE_FILE));
    // Outside any sev-attest package and without resources: not found (the demo then says so).
    expect(findDemoFirmware(tmpDir('no-package-'), undefined)).toBeUndefined();
    fs.rmSync(resources, { recursive: true, force: true });
  });
});

describe('demo:run without a vmId, from an empty data directory', () => {
  it('the contract accepts it with no vmId, still refuses bad ones', () => {
    expect(invokeArgSchemas['demo:run'].safeParse([{}]).success).toBe(true);
    expect(invokeArgSchemas['demo:run'].safeParse([{ vmId: '../x' }]).success).toBe(false);
    expect(invokeArgSchemas['demo:run'].safeParse([{ cpuCount: 0 }]).success).toBe(false);
  });

  it('creates the demo profile, firmware and passphrase, then runs the approve-and-release cycle', async () => {
    expect(h.svc.profiles.list()).toEqual([]);
    expect(h.svc.artifacts.list()).toEqual([]);
    const r = await runDemo([{}]);
    expect(r).toMatchObject({ outcome: 'released', vmId: DEMO_VM_ID, releasedGuids: [LUKS_PASSPHRASE_GUID] });

    const p = h.svc.profiles.get(DEMO_VM_ID)!;
    expect(p).toMatchObject({
      name: DEMO_PROFILE_NAME,
      scheme: 'amd-sev-es',
      policy: 0x5,
      cpuCounts: [2],
      cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      approval: 'manual',
      firmware: { kind: 'artifact', sha256: DEMO_FIRMWARE_SHA256, size: 4096 },
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' }],
    });
    expect(h.svc.artifacts.info(DEMO_FIRMWARE_SHA256)).toMatchObject({
      name: `${DEMO_FIRMWARE_FILE} (demo)`,
      kind: 'firmware',
    });
    const value = await h.svc.secretStore.get(secretAccount(DEMO_VM_ID, LUKS_PASSPHRASE_GUID));
    expect(new TextDecoder().decode(value)).toBe(DEMO_PASSPHRASE);
    // The owner saw a real launch: approval, validate and secret release in the audit log.
    const events = h.svc.audit.list({ vmId: DEMO_VM_ID });
    expect(events.some((e) => e.type === 'decision' && e.result === 'ok')).toBe(true);
    expect(events.some((e) => e.type === 'validate' && e.result === 'ok')).toBe(true);
    expect(events.some((e) => e.type === 'secret-release')).toBe(true);
  });

  it('a second run reuses the profile and artifact; a denial is reported as refused', async () => {
    const created = h.svc.profiles.get(DEMO_VM_ID)!.createdAt;
    const r = await runDemo([{}], 'deny');
    expect(r).toMatchObject({ outcome: 'refused', code: 'denied', vmId: DEMO_VM_ID });
    expect(h.svc.profiles.list()).toHaveLength(1);
    expect(h.svc.profiles.get(DEMO_VM_ID)!.createdAt).toBe(created);
    expect(h.svc.artifacts.list()).toHaveLength(1);
  });

  it('puts back a missing firmware and passphrase of its own profile (e.g. a memory store restarted)', async () => {
    await h.svc.artifacts.delete(DEMO_FIRMWARE_SHA256);
    await h.svc.secretStore.delete(secretAccount(DEMO_VM_ID, LUKS_PASSPHRASE_GUID));
    const { created, profile } = await ensureDemoProfile(h.svc);
    expect(created).toBe(false);
    expect(profile.secrets).toHaveLength(1);
    expect(h.svc.artifacts.has(DEMO_FIRMWARE_SHA256)).toBe(true);
    const value = await h.svc.secretStore.get(secretAccount(DEMO_VM_ID, LUKS_PASSPHRASE_GUID));
    expect(new TextDecoder().decode(value)).toBe(DEMO_PASSPHRASE);
  });

  it("runs an owner's own profile named demo as it is, never writing the demo passphrase into it", async () => {
    const p = h.svc.profiles.get(DEMO_VM_ID)!;
    h.svc.profiles.put({ ...p, name: 'My own demo', secrets: [] });
    await h.svc.secretStore.delete(secretAccount(DEMO_VM_ID, LUKS_PASSPHRASE_GUID));
    const { profile } = await ensureDemoProfile(h.svc);
    expect(profile).toMatchObject({ name: 'My own demo', secrets: [] });
    expect(await h.svc.secretStore.get(secretAccount(DEMO_VM_ID, LUKS_PASSPHRASE_GUID))).toBeUndefined();
  });

  it('without the shipped firmware it says what is missing', async () => {
    h.svc.profiles.delete(DEMO_VM_ID);
    await expect(ensureDemoProfile(h.svc, '/nonexistent/OVMF.fd')).rejects.toMatchObject({
      code: 'demo-not-possible',
      message: expect.stringContaining('demo firmware'),
    });
    expect(h.svc.profiles.get(DEMO_VM_ID)).toBeUndefined();
  });
});
