/**
 * The SNP decision: which profile a verified report is (each rule, ambiguity), and "release only after
 * verify" for resources. The @ts-expect-error lines are the type-level test (tsc fails if they compile).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { flattenedDecrypt, importJWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTeePubkey } from '../kbs/jwk';
import { VmProfileSchema, type VmProfile } from '../profile';
import { SnpTrustStore } from '../snp/roots';
import type { TcbParts } from '../snp/tcb';
import { verifyReport, type VerifiedSnpReport } from '../snp/verify';
import {
  chipId,
  makeKey,
  makeReport,
  makeTestRoots,
  type ReportSpec,
  type TestRoots,
} from '../../test/helpers/snp-pki';
import { decideSnpGuest, releaseResource, VerifiedSnpGuest, type SnpCandidate } from './snp';

const TCB: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const CHIP = chipId(7);
const MEAS = Buffer.alloc(48, 0x5a);
const MEAS_HEX = MEAS.toString('hex');
const BINDING = Buffer.alloc(64, 0);
BINDING.set(Buffer.alloc(48, 0x11));
const HOST_A = 'a1'.repeat(32);
const HOST_B = 'b2'.repeat(32);

let roots: TestRoots;
let vcek: { der: Buffer; key: KeyObject };
let trust: SnpTrustStore;
let guestKey: { privateKey: KeyObject; jwk: Record<string, unknown> };

beforeAll(() => {
  roots = makeTestRoots('Milan', 'decision');
  vcek = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
  trust = SnpTrustStore.of([roots.set]);
  const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = kp.publicKey.export({ format: 'jwk' });
  guestKey = { privateKey: kp.privateKey, jwk: { ...jwk, alg: 'ECDH-ES+A256KW' } };
});

function verified(spec: Partial<ReportSpec> = {}): VerifiedSnpReport {
  const bytes = makeReport(
    {
      product: 'Milan',
      tcb: TCB,
      chipId: CHIP,
      measurement: MEAS,
      reportData: BINDING,
      hostData: Buffer.from(HOST_A, 'hex'),
      ...spec,
    },
    vcek.key,
  );
  return verifyReport(bytes, { vcek: vcek.der, trust, allowMissingCrl: true });
}

function profile(
  id: string,
  over: Record<string, unknown> = {},
  snp: Record<string, unknown> = {},
): VmProfile {
  return VmProfileSchema.parse({
    id,
    name: id,
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: [MEAS_HEX] },
    approval: 'auto',
    revision: `${id}-r1`,
    secrets: [{ guid: '11111111-2222-4333-8444-555555555555', kind: 'raw', resource: 'default/key/one' }],
    snp,
    ...over,
  });
}

const cand = (p: VmProfile, measurements = [MEAS_HEX]): SnpCandidate => ({ profile: p, measurements });
const binding = () => ({ reportData: BINDING, teePubkey: parseTeePubkey(guestKey.jwk) });

function fields(v: VerifiedSnpReport, p: VmProfile, measurements?: string[]): string[] {
  const d = decideSnpGuest(v, [cand(p, measurements)], binding());
  expect(d.guest).toBeUndefined();
  expect(d.refusal?.reason).toBe('no-match');
  return d.verdicts[0]!.refusals.map((r) => r.field);
}

describe('decideSnpGuest: profile selection', () => {
  it('one accepting profile mints a guest bound to profile, revision, chip, measurement and key', () => {
    const d = decideSnpGuest(verified(), [cand(profile('web', {}, { hostData: HOST_A }))], binding());
    expect(d.refusal).toBeUndefined();
    const g = d.guest!;
    expect(g).toBeInstanceOf(VerifiedSnpGuest);
    expect(g.profileId).toBe('web');
    expect(g.revision).toBe('web-r1');
    expect(g.chipId).toBe(Buffer.from(CHIP).toString('hex'));
    expect(g.measurement).toBe(MEAS_HEX);
    expect(g.policy).toBe('0x30000');
    expect(g.vouchedBy).toBe('measurement');
    expect(g.resources).toEqual(['default/key/one']);
  });

  it('two accepting profiles are ambiguous; host_data tells them apart', () => {
    const two = decideSnpGuest(verified(), [cand(profile('a')), cand(profile('b'))], binding());
    expect(two.guest).toBeUndefined();
    expect(two.refusal?.reason).toBe('ambiguous');
    expect(two.refusal?.message).toMatch(/a, b/);
    const apart = decideSnpGuest(
      verified(),
      [cand(profile('a', {}, { hostData: HOST_A })), cand(profile('b', {}, { hostData: HOST_B }))],
      binding(),
    );
    expect(apart.guest?.profileId).toBe('a');
    expect(apart.verdicts.find((v) => v.profileId === 'b')!.refusals.map((r) => r.field)).toEqual([
      'host_data',
    ]);
  });

  it('no SNP profile at all is its own refusal', () => {
    expect(decideSnpGuest(verified(), [], binding()).refusal?.reason).toBe('no-profile');
  });

  it('the refusal names every failed rule of every profile', () => {
    const d = decideSnpGuest(
      verified({ vmpl: 1 }),
      [cand(profile('a', { policy: 0x30001 })), cand(profile('b'), ['00'.repeat(48)])],
      binding(),
    );
    expect(d.refusal?.reason).toBe('no-match');
    expect(d.verdicts.map((v) => v.refusals.map((r) => r.field).sort())).toEqual([
      ['policy', 'vmpl'],
      ['measurement', 'vmpl'],
    ]);
    expect(d.refusal?.message).toMatch(/a: .*policy.*\| b: .*measurement/);
  });
});

describe('decideSnpGuest: each rule', () => {
  it('measurement: not among the expected ones', () => {
    expect(fields(verified(), profile('p'), ['00'.repeat(48)])).toEqual(['measurement']);
  });

  it('a trusted ID key vouches instead of a measurement; an untrusted one does not', () => {
    const idKey = Buffer.alloc(48, 0x77);
    const p = profile(
      'p',
      { firmware: { kind: 'digests', launchDigests: [] } },
      {
        trustedIdKeyDigests: [idKey.toString('hex')],
      },
    );
    const d = decideSnpGuest(verified({ idKeyDigest: idKey }), [cand(p, [])], binding());
    expect(d.guest?.vouchedBy).toBe('id-key');
    expect(fields(verified({ idKeyDigest: Buffer.alloc(48, 0x78) }), p, [])).toEqual(['measurement']);
  });

  it('policy: must equal the profile policy exactly', () => {
    expect(fields(verified({ policy: 0x30000n | (1n << 20n) }), profile('p'))).toEqual(['policy']);
  });

  it('debug: a debuggable guest is refused even on the same policy bits', () => {
    const f = fields(verified({ policy: 0x30000n | (1n << 19n) }), profile('p'));
    expect(f.sort()).toEqual(['policy', 'policy.debug']);
  });

  it('vmpl: the report must come from the profile VMPL', () => {
    expect(fields(verified({ vmpl: 2 }), profile('p'))).toEqual(['vmpl']);
  });

  it('minimum TCB: every component at least the minimum', () => {
    expect(fields(verified(), profile('p', {}, { minimumTcb: { snp: 9, microcode: 115 } }))).toEqual([
      'reported_tcb.snp',
    ]);
  });

  it('host_data: exact', () => {
    expect(fields(verified(), profile('p', {}, { hostData: HOST_B }))).toEqual(['host_data']);
  });

  it('report version: v2 only when the profile lowers the minimum', () => {
    expect(fields(verified({ version: 2 }), profile('p'))).toEqual(['version']);
    const lowered = decideSnpGuest(
      verified({ version: 2 }),
      [cand(profile('p', {}, { minimumReportVersion: 2 }))],
      binding(),
    );
    expect(lowered.guest?.profileId).toBe('p');
  });

  it('chip allow list: only listed chips', () => {
    expect(fields(verified(), profile('p', { allowedCpuIds: ['ab'.repeat(64)] }))).toEqual(['chip_id']);
    const listed = profile('p', { allowedCpuIds: [Buffer.from(CHIP).toString('hex')] });
    expect(decideSnpGuest(verified(), [cand(listed)], binding()).guest?.profileId).toBe('p');
  });

  it('report_data: must be the binding of nonce and key', () => {
    const other = Buffer.alloc(64, 0);
    other.set(Buffer.alloc(48, 0x12));
    expect(fields(verified({ reportData: other }), profile('p'))).toEqual(['report_data']);
  });
});

describe('VerifiedSnpGuest: only the decision creates one, and only it releases', () => {
  it('releases a profile resource as a JWE the guest key opens', async () => {
    const g = decideSnpGuest(verified(), [cand(profile('p'))], binding()).guest!;
    const jwe = releaseResource(g, 'default/key/one', new TextEncoder().encode('s3cret'));
    const key = await importJWK(
      { ...guestKey.privateKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' },
      'ECDH-ES+A256KW',
    );
    const out = await flattenedDecrypt(jwe as Parameters<typeof flattenedDecrypt>[0], key);
    expect(new TextDecoder().decode(out.plaintext)).toBe('s3cret');
  });

  it('a path the profile does not hold is never packaged', () => {
    const g = decideSnpGuest(verified(), [cand(profile('p'))], binding()).guest!;
    expect(() => releaseResource(g, 'default/key/other', new Uint8Array([1]))).toThrow(/holds no resource/);
  });

  it('an unverified look-alike cannot release (types and run time)', () => {
    const fake = { profileId: 'p', resources: ['default/key/one'], teePubkey: binding().teePubkey };
    // @ts-expect-error: a plain object of the same public shape is not a VerifiedSnpGuest (#private brand).
    expect(() => releaseResource(fake, 'default/key/one', new Uint8Array([1]))).toThrow(
      /verified SNP guest only/,
    );
    // @ts-expect-error: the constructor is private; only decideSnpGuest mints one.
    expect(() => new VerifiedSnpGuest({})).toThrow();
  });
});
