/** The launch rules of the decision, on their own: candidates, chip allow lists and proof, revisions, firmware. */
import { describe, expect, it } from 'vitest';
import { isDomainError } from '../errors';
import { VmProfileSchema, type VmProfile } from '../profile';
import { admitFirmware, firmwareRefusal } from './firmware';
import { admitLaunch, afterChipProof, needsChipProof, validateCandidates } from './launch';
import { HOST_MESSAGES } from './refusal';
import type { LaunchEvidence, ProfileSource } from './types';

const chip = 'cd'.repeat(64);
const vm = (id: string, extra: Record<string, unknown> = {}): VmProfile =>
  VmProfileSchema.parse({
    id,
    name: id,
    scheme: 'amd-sev',
    policy: 1,
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: ['aa'.repeat(32)] },
    revision: `${id}-r1`,
    ...extra,
  });
const source = (...ps: VmProfile[]): ProfileSource => ({
  get: (id) => ps.find((p) => p.id === id),
  list: () => ps,
});
const ev = (extra: Partial<LaunchEvidence> = {}): LaunchEvidence => ({
  pdh: new Uint8Array(2084),
  certChain: new Uint8Array(3 * 2084),
  policy: 1,
  ...extra,
});
function refused(f: () => unknown): { code: string; message: string; hostMessage: string } {
  try {
    f();
  } catch (e) {
    if (isDomainError(e)) return { code: e.code, message: e.message, hostMessage: e.hostMessage };
    throw e;
  }
  throw new Error('not refused');
}

describe('admitLaunch', () => {
  const profiles = source(
    vm('a'),
    vm('b', { allowedCpuIds: [chip] }),
    vm('es', { scheme: 'amd-sev-es', policy: 5 }),
  );

  it('the VM path: its profile, the owner policy, the claimed chip in the allow list', () => {
    expect(admitLaunch({ vmId: 'a' }, ev(), undefined, profiles).candidates.map((p) => p.id)).toEqual(['a']);
    expect(admitLaunch({ vmId: 'b' }, ev(), chip, profiles).policy).toBe(1);
    const wrongPolicy = refused(() => admitLaunch({ vmId: 'a' }, ev({ policy: 0 }), undefined, profiles));
    expect(wrongPolicy.code).toBe('policy-not-allowed');
    expect(wrongPolicy.message).toMatch(/0x0*1\b/);
    expect(wrongPolicy.hostMessage).toBe(HOST_MESSAGES['policy-not-allowed']);
    expect(refused(() => admitLaunch({ vmId: 'b' }, ev(), undefined, profiles)).code).toBe(
      'cpu-id-not-allowed',
    );
    expect(refused(() => admitLaunch({ vmId: 'b' }, ev(), 'ef'.repeat(64), profiles)).code).toBe(
      'cpu-id-not-allowed',
    );
    expect(refused(() => admitLaunch({ vmId: 'x' }, ev(), undefined, profiles)).code).toBe('unknown-vm');
    expect(
      refused(() => admitLaunch({ vmId: 'a' }, ev({ scheme: 'amd-sev-es' }), undefined, profiles)).code,
    ).toBe('bad-request');
  });

  it('/v1/launch: every VM with the policy whose allow list admits the claim', () => {
    expect(admitLaunch({}, ev(), undefined, profiles).candidates.map((p) => p.id)).toEqual(['a']);
    expect(admitLaunch({}, ev(), chip, profiles).candidates.map((p) => p.id)).toEqual(['a', 'b']);
    expect(refused(() => admitLaunch({}, ev({ policy: 3 }), undefined, profiles)).code).toBe(
      'policy-not-allowed',
    );
    expect(refused(() => admitLaunch({}, ev({ policy: undefined }), undefined, profiles)).code).toBe(
      'bad-request',
    );
  });

  it('an unproven chip drops the allow-listed candidates; none left is cpu-id-unproven', () => {
    const both = admitLaunch({}, ev(), chip, profiles);
    expect(needsChipProof(both.candidates)).toBe(true);
    expect(afterChipProof(both, { claimed: chip, proven: false }).candidates.map((p) => p.id)).toEqual(['a']);
    expect(afterChipProof(both, { claimed: chip, proven: true }).candidates).toHaveLength(2);
    const onlyB = admitLaunch({ vmId: 'b' }, ev(), chip, profiles);
    const r = refused(() => afterChipProof(onlyB, { claimed: chip, proven: false }));
    expect(r.code).toBe('cpu-id-unproven');
    expect(r.hostMessage).not.toMatch(/allow/);
  });
});

describe('validateCandidates', () => {
  it('binds a VM-path connection to the profile revision it was launched for', () => {
    const facts = { vmId: 'a', profileRevision: 'a-r1', policy: 1, chipId: undefined };
    expect(validateCandidates(facts, source(vm('a'))).map((p) => p.id)).toEqual(['a']);
    expect(refused(() => validateCandidates(facts, source(vm('a', { revision: 'a-r2' })))).code).toBe(
      'denied',
    );
    expect(refused(() => validateCandidates(facts, source())).code).toBe('denied');
    expect(refused(() => validateCandidates(facts, source(vm('a', { policy: 3 })))).code).toBe(
      'policy-mismatch',
    );
  });

  it('an unbound connection: the policy VMs whose allow list admits the PROVEN chip', () => {
    const ps = source(vm('a'), vm('b', { allowedCpuIds: [chip] }));
    const facts = { vmId: undefined, profileRevision: undefined, policy: 1 };
    expect(validateCandidates({ ...facts, chipId: undefined }, ps).map((p) => p.id)).toEqual(['a']);
    expect(validateCandidates({ ...facts, chipId: chip }, ps).map((p) => p.id)).toEqual(['a', 'b']);
  });
});

describe('firmware rules', () => {
  const report = { apiMajor: 1, apiMinor: 51, buildId: 3, policy: 1, measurement: new Uint8Array(48) };
  it('minimum API and allowed builds', () => {
    expect(firmwareRefusal(vm('a', { minApi: { major: 1, minor: 51 } }), report)).toBeUndefined();
    expect(firmwareRefusal(vm('a', { minApi: { major: 1, minor: 52 } }), report)?.code).toBe('api-too-old');
    expect(firmwareRefusal(vm('a', { allowedBuildIds: [4] }), report)?.code).toBe('build-not-allowed');
    expect(admitFirmware([vm('a', { allowedBuildIds: [4] }), vm('b')], report).map((p) => p.id)).toEqual([
      'b',
    ]);
    expect(refused(() => admitFirmware([vm('a', { allowedBuildIds: [4] })], report)).code).toBe(
      'build-not-allowed',
    );
  });
});
