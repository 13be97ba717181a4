/**
 * The SEV guest policy (docs/protocol.md §8): a u32 whose low 6 bits are flags, bits 6-15 reserved (must be
 * zero: LAUNCH_START fails with POLICY_FAILURE otherwise) and bits 16-31 the minimum firmware API
 * version. Pure TypeScript without Node imports: the renderer uses it too.
 */
import { SevError } from './errors';

export interface GuestPolicy {
  /** bit 0 NODBG */
  noDebug: boolean;
  /** bit 1 NOKS */
  noKeySharing: boolean;
  /** bit 2 ES */
  es: boolean;
  /** bit 3 NOSEND */
  noSend: boolean;
  /** bit 4 DOMAIN */
  domain: boolean;
  /** bit 5 SEV */
  sev: boolean;
  /** bits 16-23: minimum firmware API major */
  apiMajor: number;
  /** bits 24-31: minimum firmware API minor */
  apiMinor: number;
}

export type PolicyFlagKey = 'noDebug' | 'noKeySharing' | 'es' | 'noSend' | 'domain' | 'sev';

export interface PolicyFlag {
  bit: number;
  key: PolicyFlagKey;
  /** The name AMD's SEV API specification uses. */
  name: string;
  label: string;
  description: string;
}

/** The six defined flag bits, in bit order, with what the UI shows for each. */
export const POLICY_FLAGS: readonly PolicyFlag[] = [
  {
    bit: 0,
    key: 'noDebug',
    name: 'NODBG',
    label: 'No debugging',
    description: 'The host may not use the debug commands to decrypt or encrypt guest memory.',
  },
  {
    bit: 1,
    key: 'noKeySharing',
    name: 'NOKS',
    label: 'No key sharing',
    description: 'The guest may not share its memory encryption key with any other guest.',
  },
  {
    bit: 2,
    key: 'es',
    name: 'ES',
    label: 'SEV-ES required',
    description:
      'CPU register state is encrypted too (SEV-ES); the initial VMSAs are part of the measurement.',
  },
  {
    bit: 3,
    key: 'noSend',
    name: 'NOSEND',
    label: 'No migration',
    description: 'The guest may not be sent to another platform (the SEND_* migration commands are refused).',
  },
  {
    bit: 4,
    key: 'domain',
    name: 'DOMAIN',
    label: 'Same domain only',
    description: 'The guest may only be migrated to platforms in the same platform-owner (OCA) domain.',
  },
  {
    bit: 5,
    key: 'sev',
    name: 'SEV',
    label: 'SEV platforms only',
    description: 'The guest may only be migrated to platforms that support SEV.',
  },
];

/** Bits 6-15 (firmware SEV_GUEST_POLICY_RESERVED_MASK). */
export const POLICY_RESERVED_MASK = 0xffc0;

function checkU32(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new SevError('bad-policy', `guest policy must be an integer in 0..0xffffffff, got ${String(n)}`);
  }
}

/** Decodes a policy u32; throws bad-policy for non-u32 values and for set reserved bits 6-15. */
export function decodePolicy(n: number): GuestPolicy {
  checkU32(n);
  const reserved = n & POLICY_RESERVED_MASK;
  if (reserved !== 0) {
    throw new SevError(
      'bad-policy',
      `guest policy 0x${n.toString(16)} sets reserved bits (mask 0x${reserved.toString(16)}); bits 6-15 must be zero`,
    );
  }
  return {
    noDebug: (n & 0x01) !== 0,
    noKeySharing: (n & 0x02) !== 0,
    es: (n & 0x04) !== 0,
    noSend: (n & 0x08) !== 0,
    domain: (n & 0x10) !== 0,
    sev: (n & 0x20) !== 0,
    apiMajor: (n >>> 16) & 0xff,
    apiMinor: (n >>> 24) & 0xff,
  };
}

function checkByte(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) {
    throw new SevError('bad-policy', `policy ${what} must be an integer in 0..255, got ${String(v)}`);
  }
}

/** Encodes a GuestPolicy back to its u32 (decodePolicy(encodePolicy(p)) deep-equals p). */
export function encodePolicy(p: GuestPolicy): number {
  checkByte('API major', p.apiMajor);
  checkByte('API minor', p.apiMinor);
  let n = 0;
  for (const f of POLICY_FLAGS) if (p[f.key]) n |= 1 << f.bit;
  return (n | (p.apiMajor << 16) | (p.apiMinor << 24)) >>> 0;
}

/**
 * '0x0005'-style hex as libvirt writes `<policy>` in domain XML: at least 4 digits, 8 when the minimum
 * API bits (16-31) are set, e.g. 0x00120001.
 */
export function policyHex(n: number): string {
  checkU32(n);
  return '0x' + n.toString(16).padStart(n > 0xffff ? 8 : 4, '0');
}

/** Parses a policy written in decimal ("5") or hex ("0x0005"), as users and libvirt write it. */
export function parsePolicy(s: string): number {
  const t = s.trim();
  let n: number;
  if (/^0[xX][0-9a-fA-F]{1,8}$/.test(t)) n = parseInt(t.slice(2), 16);
  else if (/^[0-9]{1,10}$/.test(t)) n = Number(t);
  else throw new SevError('bad-policy', `guest policy must be a decimal or 0x-hex number, got '${s}'`);
  checkU32(n);
  return n;
}

/** The labels of the flags set in a policy, in bit order (for one-line summaries). */
export function policyFlagNames(n: number): string[] {
  decodePolicy(n);
  return POLICY_FLAGS.filter((f) => (n & (1 << f.bit)) !== 0).map((f) => f.name);
}
