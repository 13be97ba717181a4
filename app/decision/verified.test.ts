/**
 * "Release only after verify": a secret is packaged for a VerifiedLaunch only, and only the measurement
 * check creates one. The @ts-expect-error lines are the type-level test (tsc fails if they compile);
 * the rest checks the same at run time, plus the measurement matching rules.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VmProfileSchema, type VmProfile } from '../profile';
import { concat, fromHex } from '../sev/bytes';
import { computeMeasurement } from '../sev/measurement';
import { SecretTable } from '../sev/secret';
import { matchMeasurement, releaseSecret, VerifiedLaunch, type SessionKeys } from './verified';
import type { LaunchReport } from './types';

const keys = (): SessionKeys => ({ tek: new Uint8Array(16).fill(3), tik: new Uint8Array(16).fill(5) });
const mnonce = new Uint8Array(16).fill(0xaa);
const digestA = fromHex('aa'.repeat(32));
const digestB = fromHex('bb'.repeat(32));
const profile = (id: string): VmProfile =>
  VmProfileSchema.parse({
    id,
    name: id,
    scheme: 'amd-sev',
    policy: 1,
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: ['aa'.repeat(32)] },
  });

/** The report a guest launched with `digest` gives under the session's TIK. */
function report(digest: Uint8Array, api = { major: 1, minor: 51 }): LaunchReport {
  const measure = computeMeasurement({
    tik: keys().tik,
    apiMajor: api.major,
    apiMinor: api.minor,
    build: 3,
    policy: 1,
    digest,
    mnonce,
  });
  return {
    apiMajor: api.major,
    apiMinor: api.minor,
    buildId: 3,
    policy: 1,
    measurement: concat(measure, mnonce),
  };
}

const table = () =>
  new SecretTable().add('736869e5-84f0-4973-92ec-06879ce3da0b', new Uint8Array([1, 2, 3])).build();

describe('VerifiedLaunch: only the measurement check creates one', () => {
  it('a matching measurement verifies the one matching profile', () => {
    const out = matchMeasurement(keys(), report(digestA), [
      { profile: profile('a'), expected: [{ digest: digestB }, { digest: digestA }] },
      { profile: profile('b'), expected: [{ digest: digestB }] },
    ]);
    expect(out.verified).toBeInstanceOf(VerifiedLaunch);
    expect(out.verified!.profile.id).toBe('a');
    expect(out.tried.map((t) => t.match)).toEqual([false, true, false]);
    const packet = releaseSecret(out.verified!, table());
    expect(packet.header).toHaveLength(52);
  });

  it('a mismatch or an ambiguous match verifies nothing', () => {
    const none = matchMeasurement(keys(), report(digestA), [
      { profile: profile('b'), expected: [{ digest: digestB }] },
    ]);
    expect(none.verified).toBeUndefined();
    const two = matchMeasurement(keys(), report(digestA), [
      { profile: profile('a'), expected: [{ digest: digestA }] },
      { profile: profile('c'), expected: [{ digest: digestA }] },
    ]);
    expect(two.verified).toBeUndefined();
    expect(two.matched.map((m) => m.profile.id)).toEqual(['a', 'c']);
  });

  it('the wrong TIK (another session) verifies nothing', () => {
    const other = { ...keys(), tik: new Uint8Array(16).fill(6) };
    expect(
      matchMeasurement(other, report(digestA), [{ profile: profile('a'), expected: [{ digest: digestA }] }])
        .verified,
    ).toBeUndefined();
  });

  it('releases once; a discarded launch releases nothing', () => {
    const v = matchMeasurement(keys(), report(digestA), [
      { profile: profile('a'), expected: [{ digest: digestA }] },
    ]).verified!;
    releaseSecret(v, table());
    expect(v.released).toBe(true);
    expect(() => releaseSecret(v, table())).toThrow(/already released/);
    const d = matchMeasurement(keys(), report(digestA), [
      { profile: profile('a'), expected: [{ digest: digestA }] },
    ]).verified!;
    d.discard();
    expect(() => releaseSecret(d, table())).toThrow(/already released/);
  });

  it('an unverified session cannot package a secret (types and run time)', () => {
    const unverified = {
      ...keys(),
      profile: profile('a'),
      digest: { digest: digestA },
      released: false,
      discard() {},
    };
    // @ts-expect-error: a plain session with the same public shape is not a VerifiedLaunch (#private brand).
    expect(() => releaseSecret(unverified, table())).toThrow(/verified launch only/);
    // @ts-expect-error: the constructor is private; only matchMeasurement mints one.
    expect(() => new VerifiedLaunch({ keys: keys() })).toThrow();
  });

  it('no product code outside app/decision packages a secret or a resource, or recomputes the measurement HMAC', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const n of readdirSync(dir)) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.tsx?$/.test(n) && !/\.test\.tsx?$/.test(n)) files.push(p);
      }
    };
    for (const d of ['server', 'main', 'cli', 'host']) walk(join(process.cwd(), d));
    const offenders = files.filter((f) => {
      const s = readFileSync(f, 'utf8');
      // encryptForTee is releaseResource's (app/decision/snp.ts): services release through a VerifiedSnpGuest.
      return /\bpackageSecret\b/.test(s) || /createHmac\(/.test(s) || /\bencryptForTee\b/.test(s);
    });
    expect(offenders).toEqual([]);
  });
});
