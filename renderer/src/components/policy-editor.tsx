/**
 * The guest policy as labelled switches with a one-line explanation each, the minimum firmware API
 * (bits 16-31) and the resulting hex, which can also be typed. Reserved bits 6-15 are refused, and the
 * ES bit follows the scheme (the listener refuses a VM whose scheme and ES bit disagree).
 */
import { useEffect, useId, useState, type ChangeEvent } from 'react';
import {
  POLICY_FLAGS,
  POLICY_RESERVED_MASK,
  decodePolicy,
  encodePolicy,
  parsePolicy,
  policyHex,
  type GuestPolicy,
  type PolicyFlagKey,
} from '../../../app/sev/policy';
import type { Scheme } from '../../../app/profile';

export interface PolicyEditorProps {
  policy: number;
  scheme: Scheme;
  onChange: (policy: number) => void;
  /**
   * Told whenever a typed field (hex, API major/minor) holds a value that is not the policy in use: the
   * problem in plain words, or undefined once every field is valid. The profile editor refuses to save
   * meanwhile (it would store the last valid value, which the user no longer sees).
   */
  onProblem?: (problem: string | undefined) => void;
}

/** Why a typed API major/minor is refused, or undefined when it is a whole number 0-255. */
export function apiFieldProblem(text: string, which: 'major' | 'minor'): string | undefined {
  const t = text.trim();
  if (t === '') return `Enter the minimum API ${which} (0 for none).`;
  if (!/^\d+$/.test(t)) return `The minimum API ${which} is a whole number from 0 to 255.`;
  if (Number(t) > 255)
    return `The minimum API ${which} is at most 255 (one byte of the policy); ${t} is too big.`;
  return undefined;
}

const ES_BIT = 0x4;

/** The policy with its ES bit set to match the scheme (used when the scheme changes). */
export function policyForScheme(policy: number, scheme: Scheme): number {
  return (scheme === 'amd-sev-es' ? policy | ES_BIT : policy & ~ES_BIT) >>> 0;
}

/** Why a typed policy is refused, or undefined when it is acceptable for this scheme. */
export function policyProblem(text: string, scheme: Scheme): { problem?: string; value?: number } {
  let n: number;
  try {
    n = parsePolicy(text);
  } catch {
    return { problem: 'Enter the policy as 0x-hex (0x0005) or decimal.' };
  }
  const reserved = n & POLICY_RESERVED_MASK;
  if (reserved !== 0) {
    return {
      problem: `Bits 6-15 are reserved and must be zero (this value sets 0x${reserved.toString(16)}): the firmware would refuse the launch.`,
    };
  }
  const es = (n & ES_BIT) !== 0;
  if (es !== (scheme === 'amd-sev-es')) {
    return {
      problem: es
        ? 'The ES bit (0x4) is set but the scheme is SEV: choose SEV-ES as the scheme instead.'
        : 'The scheme is SEV-ES, so the ES bit (0x4) must be set.',
    };
  }
  return { value: n };
}

/** The policy editor: switches ↔ hex. */
export function PolicyEditor({ policy, scheme, onChange, onProblem }: PolicyEditorProps) {
  const id = useId();
  const decoded = safeDecode(policy);
  const [draft, setDraft] = useState(() => policyHex(policy));
  const [shownPolicy, setShownPolicy] = useState(policy);
  const [problem, setProblem] = useState<string | undefined>();
  const [apiDraft, setApiDraft] = useState(() => ({
    major: String(decoded.apiMajor),
    minor: String(decoded.apiMinor),
  }));
  const [shownScheme, setShownScheme] = useState(scheme);

  // The parent changed the policy (a switch, the scheme): show its hex unless the user is mid-typing it.
  if (shownPolicy !== policy) {
    setShownPolicy(policy);
    setDraft(policyHex(policy));
    setProblem(undefined);
    setApiDraft({ major: String(decoded.apiMajor), minor: String(decoded.apiMinor) });
  }
  // A scheme change re-checks a hex value that is still being typed (its ES bit may now be right).
  if (shownScheme !== scheme) {
    setShownScheme(scheme);
    if (problem !== undefined) setProblem(policyProblem(draft, scheme).problem);
  }
  const majorProblem = apiFieldProblem(apiDraft.major, 'major');
  const minorProblem = apiFieldProblem(apiDraft.minor, 'minor');
  const anyProblem = problem !== undefined ? `Policy (hex): ${problem}` : (majorProblem ?? minorProblem);
  useEffect(() => onProblem?.(anyProblem), [anyProblem, onProblem]);

  const update = (next: GuestPolicy) => onChange(encodePolicy(next));

  const onHex = (e: ChangeEvent<HTMLInputElement>) => {
    const text = e.target.value;
    setDraft(text);
    const r = policyProblem(text, scheme);
    setProblem(r.problem);
    if (r.value !== undefined && r.value !== policy) {
      setShownPolicy(r.value);
      onChange(r.value);
    }
  };

  // The typed text stays as typed; only a valid value changes the policy (an invalid one says why).
  const apiInput = (which: 'major' | 'minor') => (e: ChangeEvent<HTMLInputElement>) => {
    const text = e.target.value;
    setApiDraft((d) => ({ ...d, [which]: text }));
    if (apiFieldProblem(text, which) === undefined) {
      update({ ...decoded, [which === 'major' ? 'apiMajor' : 'apiMinor']: Number(text) });
    }
  };

  return (
    <fieldset className="policy-editor">
      <legend>Guest policy</legend>
      <ul className="switch-list">
        {POLICY_FLAGS.map((f) => {
          const inputId = `${id}-${f.key}`;
          const isEs = f.key === 'es';
          return (
            <li key={f.key}>
              <input
                id={inputId}
                type="checkbox"
                role="switch"
                className="switch"
                checked={decoded[f.key as PolicyFlagKey]}
                disabled={isEs}
                aria-describedby={`${inputId}-desc`}
                onChange={(e) => update({ ...decoded, [f.key]: e.target.checked })}
              />
              <label htmlFor={inputId}>
                {f.label} <code className="muted">{f.name}</code>
              </label>
              <p id={`${inputId}-desc`} className="hint">
                {f.description}
                {isEs ? ' Follows the scheme chosen above.' : ''}
              </p>
            </li>
          );
        })}
      </ul>
      {!decoded.noDebug && (
        <p className="warning" role="note">
          Debugging is allowed: the host could decrypt this guest&apos;s memory. Keep &quot;No debugging&quot;
          on for production guests.
        </p>
      )}
      <div className="row">
        <div className="field">
          <label>
            Minimum firmware API major
            <input
              type="number"
              min={0}
              max={255}
              value={apiDraft.major}
              onChange={apiInput('major')}
              aria-invalid={majorProblem !== undefined}
              aria-describedby={`${id}-api-hint${majorProblem ? ` ${id}-major-problem` : ''}`}
            />
          </label>
          {majorProblem && (
            <span id={`${id}-major-problem`} className="field-error">
              {majorProblem}
            </span>
          )}
        </div>
        <div className="field">
          <label>
            Minimum firmware API minor
            <input
              type="number"
              min={0}
              max={255}
              value={apiDraft.minor}
              onChange={apiInput('minor')}
              aria-invalid={minorProblem !== undefined}
              aria-describedby={`${id}-api-hint${minorProblem ? ` ${id}-minor-problem` : ''}`}
            />
          </label>
          {minorProblem && (
            <span id={`${id}-minor-problem`} className="field-error">
              {minorProblem}
            </span>
          )}
        </div>
      </div>
      <p id={`${id}-api-hint`} className="hint">
        Policy bits 16-31: the firmware refuses to launch the guest if its API version is older.
      </p>
      <label className="policy-hex">
        Policy (hex)
        <input
          type="text"
          className="mono"
          spellCheck={false}
          autoComplete="off"
          value={draft}
          aria-invalid={problem !== undefined}
          aria-describedby={`${id}-hex-problem`}
          onChange={onHex}
        />
      </label>
      <p id={`${id}-hex-problem`} className={problem ? 'error' : 'hint'} role={problem ? 'alert' : undefined}>
        {problem ?? `Resulting policy: ${policyHex(policy)} (libvirt <policy>, QEMU sev-guest policy=)`}
      </p>
    </fieldset>
  );
}

function safeDecode(policy: number): GuestPolicy {
  try {
    return decodePolicy(policy);
  } catch {
    // A stored policy with reserved bits: show the defined bits; the hex field reports the problem.
    return decodePolicy((policy & ~POLICY_RESERVED_MASK) >>> 0);
  }
}
