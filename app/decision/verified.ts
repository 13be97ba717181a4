/**
 * "Release only after verify", enforced by types (virtee/sev's `Session<Verified>` is the model).
 *
 * A `VerifiedLaunch` is the one value a secret can be packaged for, and the only code that can create
 * one is `matchMeasurement`, on success: its constructor is private and the factory is module-private.
 * It holds copies of the launch session's keys and the measured `measure`, releases once (the keys are
 * wiped afterwards), and names the profile whose measurement it proved.
 */
import type { VmProfile } from '../profile';
import { wipe } from '../sev/bytes';
import { splitMeasurementBlob, verifyMeasurement } from '../sev/measurement';
import { packageSecret, type SecretPacket } from '../sev/secret';
import type { LaunchReport } from './types';

/** The launch session's transport keys, as a connection holds them between launch and validate. */
export interface SessionKeys {
  tek: Uint8Array;
  tik: Uint8Array;
}

interface MintArgs<D, P> {
  keys: SessionKeys;
  measure: Uint8Array;
  report: LaunchReport;
  profile: P;
  digest: D;
}

let mint: <D, P>(a: MintArgs<D, P>) => VerifiedLaunch<D, P>;

/**
 * A launch whose measurement matched exactly one expected digest of the owner. P is what the digest was
 * expected for: the owner's VM profile in the service, a command line's single digest in the CLI.
 */
export class VerifiedLaunch<D = unknown, P = VmProfile> {
  readonly #tek: Uint8Array;
  readonly #tik: Uint8Array;
  readonly #measure: Uint8Array;
  readonly #apiMajor: number;
  readonly #apiMinor: number;
  #released = false;
  /** The profile the measurement proved; its secrets are the ones to release. */
  readonly profile: P;
  /** The expected digest that matched. */
  readonly digest: D;

  private constructor(a: MintArgs<D, P>) {
    this.#tek = Uint8Array.from(a.keys.tek);
    this.#tik = Uint8Array.from(a.keys.tik);
    this.#measure = Uint8Array.from(a.measure);
    this.#apiMajor = a.report.apiMajor;
    this.#apiMinor = a.report.apiMinor;
    this.profile = a.profile;
    this.digest = a.digest;
  }

  static {
    mint = <D, P>(a: MintArgs<D, P>) => new VerifiedLaunch<D, P>(a);
  }

  /** True once the secret was packaged (or the launch discarded): it never releases again. */
  get released(): boolean {
    return this.#released;
  }

  /** Wipes the keys without releasing (a refusal after the measurement check). */
  discard(): void {
    this.#released = true;
    wipe(this.#tek);
    wipe(this.#tik);
  }

  /** Internal to releaseSecret. */
  static package(v: VerifiedLaunch<unknown, unknown>, table: Uint8Array): SecretPacket {
    if (!(v instanceof VerifiedLaunch))
      throw new TypeError('a secret is released for a verified launch only');
    if (v.#released) throw new TypeError('this verified launch already released its secret');
    v.#released = true;
    try {
      return packageSecret({
        tek: v.#tek,
        tik: v.#tik,
        table,
        measurement: v.#measure,
        apiMajor: v.#apiMajor,
        apiMinor: v.#apiMinor,
      });
    } finally {
      wipe(v.#tek);
      wipe(v.#tik);
    }
  }
}

/** One expected digest and whether the reported measurement matched it. */
export interface Tried<D, P = VmProfile> {
  profile: P;
  digest: D;
  match: boolean;
}

export interface MeasurementOutcome<D, P = VmProfile> {
  /** Present only when exactly one profile matched. */
  verified: VerifiedLaunch<D, P> | undefined;
  /** Every expected digest checked (the owner's mismatch explanation). */
  tried: Tried<D, P>[];
  /** The profiles that matched, each with its first matching digest. */
  matched: Array<{ profile: P; digest: D }>;
}

/**
 * The measurement check: recomputes the launch measurement (app/sev/measurement.ts, the one
 * implementation) for every expected digest of every candidate, in constant time per comparison, and
 * mints a VerifiedLaunch when exactly one profile matches. More than one is ambiguous and verifies none.
 */
export function matchMeasurement<D extends { digest: Uint8Array }, P = VmProfile>(
  keys: SessionKeys,
  report: LaunchReport,
  candidates: Array<{ profile: P; expected: D[] }>,
): MeasurementOutcome<D, P> {
  const { measure } = splitMeasurementBlob(report.measurement);
  const tried: Tried<D, P>[] = [];
  const matched: Array<{ profile: P; digest: D }> = [];
  for (const { profile, expected } of candidates) {
    let hit: D | undefined;
    for (const d of expected) {
      const match = verifyMeasurement({
        tik: keys.tik,
        apiMajor: report.apiMajor,
        apiMinor: report.apiMinor,
        build: report.buildId,
        policy: report.policy,
        digest: d.digest,
        measurement: report.measurement,
      });
      tried.push({ profile, digest: d, match });
      if (match && !hit) hit = d;
    }
    if (hit) matched.push({ profile, digest: hit });
  }
  const verified =
    matched.length === 1
      ? mint({ keys, measure, report, profile: matched[0]!.profile, digest: matched[0]!.digest })
      : undefined;
  wipe(measure);
  return { verified, tried, matched };
}

/**
 * Packages the secret table for LAUNCH_SECRET: the only way a secret leaves, and it needs the
 * VerifiedLaunch that only a successful measurement check creates. Once per verified launch.
 */
export function releaseSecret(verified: VerifiedLaunch<unknown, unknown>, table: Uint8Array): SecretPacket {
  return VerifiedLaunch.package(verified, table);
}
