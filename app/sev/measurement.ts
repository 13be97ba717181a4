/**
 * The launch measurement (docs/protocol.md §5): measure = HMAC-SHA256(TIK, 0x04 || api_major || api_minor ||
 * build || u32le(policy) || launch_digest || mnonce). Firmware API < 0.17 omits the 0x04/version/build
 * prefix (sev-tool calculate_measurement). LAUNCH_MEASURE returns measure(32) || mnonce(16).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SevError } from './errors';
import { u32le } from './bytes';

export const MEASUREMENT_BLOB_SIZE = 48;
export const MEASURE_SIZE = 32;
export const MNONCE_SIZE = 16;
/** SEV_CHANNEL_CTX_MEASURE in the firmware. */
const MEASURE_CONTEXT = 0x04;

export interface ApiVersion {
  major: number;
  minor: number;
}

export interface MeasurementParams {
  tik: Uint8Array;
  apiMajor: number;
  apiMinor: number;
  build: number;
  policy: number;
  /** The 32-byte launch digest (SHA-256 of everything LAUNCH_UPDATE_* measured). */
  digest: Uint8Array;
  /** The 16-byte nonce the firmware returned with the measurement. */
  mnonce: Uint8Array;
}

/** True when (major, minor) >= (minMajor, minMinor). */
export function apiAtLeast(major: number, minor: number, minMajor: number, minMinor: number): boolean {
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

/** Whether this firmware API puts the 0x04 || version || build prefix in the measurement (>= 0.17). */
export function measurementHasPrefix(apiMajor: number, apiMinor: number): boolean {
  return apiAtLeast(apiMajor, apiMinor, 0, 17);
}

/** Throws api-too-old when the firmware's API version is below the owner's minimum. */
export function requireMinimumApi(apiMajor: number, apiMinor: number, min: ApiVersion): void {
  if (!apiAtLeast(apiMajor, apiMinor, min.major, min.minor)) {
    throw new SevError(
      'api-too-old',
      `firmware API ${apiMajor}.${apiMinor} is older than the required minimum ${min.major}.${min.minor}`,
    );
  }
}

function checkByte(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) {
    throw new SevError('bad-format', `${what} must be an integer in 0..255, got ${String(v)}`);
  }
}

function checkLen(what: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new SevError(
      'bad-length',
      `${what} must be ${len} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`,
    );
  }
}

/** The 32-byte measurement HMAC the firmware computes for these inputs. */
export function computeMeasurement(p: MeasurementParams): Uint8Array {
  checkLen('TIK', p.tik, 16);
  checkLen('launch digest', p.digest, 32);
  checkLen('mnonce', p.mnonce, MNONCE_SIZE);
  checkByte('API major', p.apiMajor);
  checkByte('API minor', p.apiMinor);
  checkByte('build id', p.build);
  if (!Number.isInteger(p.policy) || p.policy < 0 || p.policy > 0xffffffff) {
    throw new SevError('bad-policy', `guest policy must be a u32, got ${String(p.policy)}`);
  }
  const h = createHmac('sha256', p.tik);
  if (measurementHasPrefix(p.apiMajor, p.apiMinor)) {
    h.update(Uint8Array.of(MEASURE_CONTEXT, p.apiMajor, p.apiMinor, p.build));
  }
  h.update(u32le(p.policy)).update(p.digest).update(p.mnonce);
  return new Uint8Array(h.digest());
}

/** Splits LAUNCH_MEASURE's 48-byte output into measure(32) and mnonce(16). */
export function splitMeasurementBlob(b: Uint8Array): { measure: Uint8Array; mnonce: Uint8Array } {
  if (!(b instanceof Uint8Array) || b.length !== MEASUREMENT_BLOB_SIZE) {
    throw new SevError(
      'bad-length',
      `a launch measurement is ${MEASUREMENT_BLOB_SIZE} bytes (32-byte HMAC then 16-byte nonce), got ${
        b instanceof Uint8Array ? b.length : typeof b
      }`,
    );
  }
  return { measure: b.slice(0, MEASURE_SIZE), mnonce: b.slice(MEASURE_SIZE) };
}

export type VerifyMeasurementParams = Omit<MeasurementParams, 'mnonce'> & {
  /** The reported 32-byte measure (then mnonce is required) or the whole 48-byte LAUNCH_MEASURE blob. */
  measurement: Uint8Array;
  /** Required with a 32-byte measure; with a 48-byte blob, if given it must equal the blob's nonce. */
  mnonce?: Uint8Array;
  /** The owner's minimum firmware API version; an older firmware throws api-too-old. */
  minApi?: ApiVersion;
};

/**
 * Recomputes the measurement and compares it with the reported one in constant time. False means the
 * guest did not launch with these inputs (or the TIK is wrong); malformed inputs throw SevError.
 */
export function verifyMeasurement(p: VerifyMeasurementParams): boolean {
  if (p.minApi) requireMinimumApi(p.apiMajor, p.apiMinor, p.minApi);
  let measure: Uint8Array;
  let mnonce: Uint8Array;
  if (p.measurement instanceof Uint8Array && p.measurement.length === MEASUREMENT_BLOB_SIZE) {
    ({ measure, mnonce } = splitMeasurementBlob(p.measurement));
    if (p.mnonce !== undefined) {
      checkLen('mnonce', p.mnonce, MNONCE_SIZE);
      if (!timingSafeEqual(p.mnonce, mnonce)) return false;
    }
  } else if (p.measurement instanceof Uint8Array && p.measurement.length === MEASURE_SIZE) {
    if (p.mnonce === undefined) {
      throw new SevError('bad-format', 'a 32-byte measurement needs its 16-byte mnonce');
    }
    measure = p.measurement;
    mnonce = p.mnonce;
  } else {
    throw new SevError(
      'bad-length',
      `measurement must be the 32-byte HMAC or the 48-byte LAUNCH_MEASURE blob, got ${
        p.measurement instanceof Uint8Array ? p.measurement.length : typeof p.measurement
      } bytes`,
    );
  }
  const expected = computeMeasurement({ ...p, mnonce });
  return timingSafeEqual(expected, measure);
}
