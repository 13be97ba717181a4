/** The firmware rules of a profile: minimum API version and the allowed builds. */
import type { VmProfile } from '../profile';
import { apiAtLeast } from '../sev/measurement';
import type { DomainError } from '../errors';
import { refusal, type DecisionCode } from './refusal';
import type { LaunchReport } from './types';

/** Undefined when the profile admits the reported firmware, else the refusal. */
export function firmwareRefusal(p: VmProfile, r: LaunchReport): DomainError<DecisionCode> | undefined {
  const min = p.minApi;
  if (min && !apiAtLeast(r.apiMajor, r.apiMinor, min.major, min.minor)) {
    return refusal(
      'api-too-old',
      `firmware API ${r.apiMajor}.${r.apiMinor} is below ${p.id}'s minimum ${min.major}.${min.minor}`,
    );
  }
  if (p.allowedBuildIds !== undefined && !p.allowedBuildIds.includes(r.buildId)) {
    return refusal('build-not-allowed', `firmware build ${r.buildId} is not in ${p.id}'s allowed builds`);
  }
  return undefined;
}

/** The candidates whose firmware rules admit the report; none is the first candidate's refusal. */
export function admitFirmware(candidates: VmProfile[], r: LaunchReport): VmProfile[] {
  const admitted: VmProfile[] = [];
  let first: DomainError<DecisionCode> | undefined;
  for (const p of candidates) {
    const refused = firmwareRefusal(p, r);
    if (refused) first ??= refused;
    else admitted.push(p);
  }
  if (admitted.length === 0) {
    throw first ?? refusal('measurement-mismatch', 'no VM of the owner uses this launch policy');
  }
  return admitted;
}
