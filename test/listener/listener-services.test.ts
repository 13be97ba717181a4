/** The listener's in-memory services on their own: connections, approvals, expected digests. */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VmProfileSchema } from '../../app/profile';
import { ApprovalService, approvalFingerprint } from '../../server/services/approvals';
import { ConnectionTable } from '../../server/services/connections';
import { clientKey } from '../../server/services/attestation';
import { ExpectedDigests } from '../../server/services/expected-digests';
import { FIRMWARE_PATH, MILAN } from '../helpers/listener-harness';

const keys = () => ({ tek: new Uint8Array(16).fill(7), tik: new Uint8Array(16).fill(9) });
const conn = (t: ConnectionTable, vmId = 'vm') =>
  t.create({ vmId, policy: 1, client: 'c', chipId: undefined, anchor: 'a', ...keys() });

describe('ConnectionTable', () => {
  it('releases once, wipes keys on finish, never reuses ids', () => {
    const t = new ConnectionTable();
    const a = conn(t);
    const b = conn(t);
    expect(a.id).not.toBe(b.id);
    expect(t.latestFor('vm', 'c')).toBe(b.id);
    const taken = t.take(a.id);
    expect(taken.ok).toBe(true);
    const tek = a.tek!;
    expect(t.take(a.id)).toEqual({ ok: false, reason: 'connection-used' });
    t.finish(a);
    expect(tek.every((x) => x === 0)).toBe(true);
    expect(a.tek).toBeUndefined();
    expect(t.take(a.id)).toEqual({ ok: false, reason: 'connection-used' });
    expect(t.take('nope')).toEqual({ ok: false, reason: 'unknown-connection' });
    t.close();
  });

  it("keeps a VM's latest connection per client: another client's launch never shadows it", () => {
    const t = new ConnectionTable();
    const mine = t.create({
      vmId: 'vm',
      policy: 1,
      client: 'c',
      clientKey: 'me',
      chipId: undefined,
      anchor: 'a',
      ...keys(),
    });
    const theirs = t.create({
      vmId: 'vm',
      policy: 1,
      client: 'c',
      clientKey: 'them',
      chipId: undefined,
      anchor: 'a',
      ...keys(),
    });
    expect(t.latestFor('vm', 'me')).toBe(mine.id);
    expect(t.latestFor('vm', 'them')).toBe(theirs.id);
    expect(t.latestFor('vm', 'nobody')).toBeUndefined();
    expect(clientKey({ address: '10.0.0.1', hostToken: true })).not.toBe(
      clientKey({ address: '10.0.0.1', hostToken: false }),
    );
    expect(clientKey({ address: '10.0.0.1', port: 1, hostToken: true })).toBe(
      clientKey({ address: '10.0.0.1', port: 2, hostToken: true }),
    );
    t.close();
  });

  it('expires after the TTL and wipes the keys', () => {
    let now = 1000;
    const t = new ConnectionTable({ ttlMs: 500, now: () => now });
    const a = conn(t);
    const tik = a.tik!;
    now += 501;
    expect(t.take(a.id)).toEqual({ ok: false, reason: 'connection-expired' });
    expect(tik.every((x) => x === 0)).toBe(true);
    t.close();
  });

  it('the sweep wipes the keys of an expired connection no validate ever claimed', () => {
    let now = 1000;
    const t = new ConnectionTable({ ttlMs: 500, now: () => now });
    const a = conn(t);
    const tek = a.tek!;
    const tik = a.tik!;
    now += 501;
    t.sweep();
    expect(a.state).toBe('expired');
    expect(a.tek).toBeUndefined();
    expect([...tek, ...tik].every((x) => x === 0)).toBe(true);
    expect(t.openCount).toBe(0);
    t.close();
  });

  it('close() wipes the keys of open connections (shutdown)', () => {
    const t = new ConnectionTable();
    const a = conn(t);
    const tek = a.tek!;
    t.close();
    expect(tek.every((x) => x === 0)).toBe(true);
    expect(t.take(a.id)).toEqual({ ok: false, reason: 'connection-expired' });
  });

  it('refuses new connections when full of open ones (bounded memory)', () => {
    const t = new ConnectionTable({ maxEntries: 3 });
    for (let i = 0; i < 3; i++) conn(t, `v${i}`);
    expect(() => conn(t)).toThrow(/too many/);
    t.close();
  });
});

describe('ApprovalService', () => {
  it('one approval per fingerprint; approve, consume, then a new one', () => {
    const s = new ApprovalService({ timeoutSeconds: 60 });
    const fp = approvalFingerprint('1.2.3.4', 'vm', [new Uint8Array([1, 2])]);
    expect(approvalFingerprint('1.2.3.4', 'vm', [new Uint8Array([1]), new Uint8Array([2])])).not.toBe(fp);
    const info = { vmId: 'vm', client: '1.2.3.4:5', chipId: undefined, anchor: 'x', policy: 1 };
    const a = s.request(fp, info);
    const b = s.request(fp, info);
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.approval.id).toBe(a.approval.id);
    expect(s.pendingCount).toBe(1);
    s.decide(a.approval.id, 'approve');
    expect(() => s.decide(a.approval.id, 'deny')).toThrow(/already/);
    s.consume(a.approval);
    expect(s.request(fp, info).approval.id).not.toBe(a.approval.id);
    s.close();
  });

  it('a pending approval times out as denied', () => {
    let now = 0;
    const seen: string[] = [];
    const s = new ApprovalService({ timeoutSeconds: 5, now: () => now });
    s.subscribe((a) => seen.push(`${a.state}:${a.reason ?? ''}`));
    const { approval } = s.request('fp', {
      vmId: 'v',
      client: 'c',
      chipId: undefined,
      anchor: undefined,
      policy: 1,
    });
    now = 5001;
    expect(s.list()[0]!.state).toBe('denied');
    expect(approval.reason).toBe('timeout');
    expect(seen).toEqual(['pending:', 'denied:timeout']);
    s.close();
  });
});

describe('ExpectedDigests', () => {
  it('hashes a firmware once per artifact and covers counts x signatures x variants', async () => {
    const sha = (await import('node:crypto'))
      .createHash('sha256')
      .update(fs.readFileSync(FIRMWARE_PATH))
      .digest('hex');
    const d = new ExpectedDigests({ firmwarePath: (s) => (s === sha ? FIRMWARE_PATH : undefined) });
    const profile = VmProfileSchema.parse({
      id: 'es',
      name: 'es',
      scheme: 'amd-sev-es',
      policy: 5,
      cpuCounts: [1, 2, 4],
      cpuSignatures: [MILAN, { family: 23, model: 1, stepping: 2 }],
      vmsaVariants: ['legacy', 'kvm-init2'],
      firmware: { kind: 'artifact', sha256: sha, size: 4096 },
    });
    const list = await d.forProfile(profile);
    expect(list).toHaveLength(12);
    expect(new Set(list.map((x) => x.hex)).size).toBe(12);
    await d.forProfile({ ...profile, cpuCounts: [8] });
    await d.forProfile({ ...profile, scheme: 'amd-sev', policy: 1 });
    expect(d.firmwarePasses).toBe(1);
    await expect(
      d.forProfile({ ...profile, firmware: { kind: 'artifact', sha256: 'ab'.repeat(32), size: 1 } }),
    ).rejects.toThrow(/not in the artifact store/);
  });
});
