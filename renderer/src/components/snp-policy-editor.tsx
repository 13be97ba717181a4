/**
 * The SEV-SNP guest policy (docs/protocol.md §11): the bits an owner decides, each explained, the
 * minimum ABI version (bits 0-15) and the resulting hex, which can also be typed. Every report must carry
 * exactly this policy. Bit 17 is reserved and always set; debugging (bit 19) is never allowed.
 */
import { useEffect, useId, useState, type ChangeEvent } from 'react';
import { SNP_POLICY_DEBUG_BIT } from '../../../app/profile';
import { decodeGuestPolicy, guestPolicyProblem } from '../../../app/snp/policy';

export interface SnpPolicyEditorProps {
  policy: number;
  onChange: (policy: number) => void;
  /** The problem in plain words while the policy or a typed field is not acceptable, else undefined. */
  onProblem?: (problem: string | undefined) => void;
}

const RESERVED_ONE = 1 << 17;

/** The switches an owner sets, with what each allows. */
export const SNP_POLICY_SWITCHES = [
  {
    bit: 16,
    label: 'SMT allowed',
    description:
      'The guest may run on a host with simultaneous multithreading on. Clear it to require SMT off (fewer side channels; most hosts have SMT on, so the launch would fail there).',
  },
  {
    bit: 18,
    label: 'Migration agent allowed',
    description: 'A migration agent may be associated with the guest and move it to another host.',
  },
  {
    bit: 20,
    label: 'Single socket only',
    description: 'The guest may only run on one socket (the firmware refuses to launch it across sockets).',
  },
] as const;

/** "0x30000": the policy as libvirt's <policy> and QEMU's sev-snp-guest policy= take it. */
export function snpPolicyHex(policy: number): string {
  return `0x${(policy >>> 0).toString(16)}`;
}

/** Why a policy cannot be an SNP profile's, in plain words, or undefined. */
export function snpPolicyProblem(policy: number): string | undefined {
  if ((policy & SNP_POLICY_DEBUG_BIT) !== 0)
    return 'Bit 19 (debugging) lets the host read guest memory: SEV Attest never releases to such a guest. Clear it.';
  const problem = guestPolicyProblem(BigInt(policy >>> 0));
  if (problem) return `This is not a policy SNP firmware accepts: ${problem}.`;
  return undefined;
}

function parseTyped(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (/^0x[0-9a-f]{1,8}$/.test(t)) return Number.parseInt(t.slice(2), 16);
  if (/^\d{1,10}$/.test(t) && Number(t) <= 0xffffffff) return Number(t);
  return undefined;
}

function abiProblem(text: string, which: 'major' | 'minor'): string | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return `The minimum ABI ${which} is a whole number from 0 to 255.`;
  if (Number(t) > 255) return `The minimum ABI ${which} is at most 255; ${t} is too big.`;
  return undefined;
}

export function SnpPolicyEditor({ policy, onChange, onProblem }: SnpPolicyEditorProps) {
  const id = useId();
  const decoded = decodeGuestPolicy(BigInt(policy >>> 0));
  const [hex, setHex] = useState(() => snpPolicyHex(policy));
  const [shownPolicy, setShownPolicy] = useState(policy);
  const [typedProblem, setTypedProblem] = useState<string | undefined>();
  const [abi, setAbi] = useState({ major: String(decoded.abiMajor), minor: String(decoded.abiMinor) });
  if (shownPolicy !== policy) {
    setShownPolicy(policy);
    setHex(snpPolicyHex(policy));
    setTypedProblem(undefined);
    setAbi({ major: String(decoded.abiMajor), minor: String(decoded.abiMinor) });
  }
  const majorProblem = abiProblem(abi.major, 'major');
  const minorProblem = abiProblem(abi.minor, 'minor');
  const valueProblem = snpPolicyProblem(policy);
  const problem = typedProblem ?? majorProblem ?? minorProblem ?? valueProblem;
  useEffect(() => onProblem?.(problem), [problem, onProblem]);

  const setBit = (bit: number, on: boolean) =>
    onChange((on ? policy | (1 << bit) : policy & ~(1 << bit)) >>> 0);
  const onHex = (e: ChangeEvent<HTMLInputElement>) => {
    const text = e.target.value;
    setHex(text);
    const n = parseTyped(text);
    if (n === undefined) {
      setTypedProblem('Enter the policy as 0x-hex (0x30000) or decimal.');
      return;
    }
    setTypedProblem(undefined);
    if (n !== policy) {
      setShownPolicy(n);
      onChange(n);
    }
  };
  const onAbi = (which: 'major' | 'minor') => (e: ChangeEvent<HTMLInputElement>) => {
    const text = e.target.value;
    setAbi((a) => ({ ...a, [which]: text }));
    if (abiProblem(text, which) === undefined) {
      const n = Number(text);
      const next = which === 'major' ? (policy & ~0xff00) | (n << 8) : (policy & ~0xff) | n;
      onChange((next | RESERVED_ONE) >>> 0);
    }
  };

  return (
    <fieldset className="policy-editor" data-testid="snp-policy">
      <legend>SNP guest policy</legend>
      <p className="hint">
        The report of every guest of this profile must carry exactly this policy. Bit 17 is reserved and
        always set.
      </p>
      <ul className="switch-list">
        {SNP_POLICY_SWITCHES.map((s) => {
          const inputId = `${id}-bit${s.bit}`;
          return (
            <li key={s.bit}>
              <input
                id={inputId}
                type="checkbox"
                role="switch"
                className="switch"
                checked={(policy & (1 << s.bit)) !== 0}
                aria-describedby={`${inputId}-desc`}
                onChange={(e) => setBit(s.bit, e.target.checked)}
              />
              <label htmlFor={inputId}>
                {s.label} <code className="muted">bit {s.bit}</code>
              </label>
              <p id={`${inputId}-desc`} className="hint">
                {s.description}
              </p>
            </li>
          );
        })}
        <li>
          <input
            id={`${id}-debug`}
            type="checkbox"
            role="switch"
            className="switch"
            checked={decoded.debug}
            disabled={!decoded.debug}
            aria-describedby={`${id}-debug-desc`}
            onChange={(e) => setBit(19, e.target.checked)}
          />
          <label htmlFor={`${id}-debug`}>
            Debugging allowed <code className="muted">bit 19</code>
          </label>
          <p id={`${id}-debug-desc`} className="hint">
            Refused: the host could read guest memory, so SEV Attest never releases a secret to such a guest.
          </p>
        </li>
      </ul>
      <div className="row">
        <div className="field">
          <label>
            Minimum ABI major
            <input
              type="number"
              min={0}
              max={255}
              value={abi.major}
              onChange={onAbi('major')}
              aria-invalid={majorProblem !== undefined}
            />
          </label>
          {majorProblem && <span className="field-error">{majorProblem}</span>}
        </div>
        <div className="field">
          <label>
            Minimum ABI minor
            <input
              type="number"
              min={0}
              max={255}
              value={abi.minor}
              onChange={onAbi('minor')}
              aria-invalid={minorProblem !== undefined}
            />
          </label>
          {minorProblem && <span className="field-error">{minorProblem}</span>}
        </div>
      </div>
      <p className="hint">Bits 0-15: the firmware refuses to launch the guest if its SNP ABI is older.</p>
      <label className="policy-hex">
        SNP policy (hex)
        <input
          type="text"
          className="mono"
          spellCheck={false}
          autoComplete="off"
          value={hex}
          aria-invalid={problem !== undefined}
          aria-describedby={`${id}-hex-problem`}
          onChange={onHex}
        />
      </label>
      <p id={`${id}-hex-problem`} className={problem ? 'error' : 'hint'} role={problem ? 'alert' : undefined}>
        {problem ??
          `Resulting policy: ${snpPolicyHex(policy)} (libvirt <policy>, QEMU sev-snp-guest policy=)`}
      </p>
    </fieldset>
  );
}
