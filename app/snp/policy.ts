/**
 * The SNP guest policy (report offset 0x08, u64; docs/protocol.md §11; SEV-SNP ABI spec, go-sev-guest
 * `abi.SnpPolicy`). Bit 17 is reserved and must be 1; bits 26..63 are reserved and must be 0.
 */
export interface SnpGuestPolicy {
  raw: bigint;
  abiMinor: number;
  abiMajor: number;
  /** Bit 16: SMT allowed. */
  smt: boolean;
  /** Bit 18: a migration agent may be associated. */
  migrateMa: boolean;
  /** Bit 19: debugging allowed (the host can read guest memory). */
  debug: boolean;
  /** Bit 20: single socket only. */
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
}

export const POLICY_RESERVED_ONE_BIT = 17n;
/** Bits 26..63 must be zero. */
export const POLICY_RESERVED_ZERO_MASK = ~((1n << 26n) - 1n) & 0xffff_ffff_ffff_ffffn;

const bit = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;

export function decodeGuestPolicy(raw: bigint): SnpGuestPolicy {
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(raw, 16),
    migrateMa: bit(raw, 18),
    debug: bit(raw, 19),
    singleSocket: bit(raw, 20),
    cxlAllow: bit(raw, 21),
    memAes256Xts: bit(raw, 22),
    raplDis: bit(raw, 23),
    ciphertextHiding: bit(raw, 24),
    pageSwapDisable: bit(raw, 25),
  };
}

/** Why a policy value cannot come from real firmware, or undefined when it can. */
export function guestPolicyProblem(raw: bigint): string | undefined {
  if (!bit(raw, Number(POLICY_RESERVED_ONE_BIT))) return 'reserved bit 17 must be 1';
  const extra = raw & POLICY_RESERVED_ZERO_MASK;
  if (extra !== 0n) return `reserved bits 26..63 must be 0 (0x${extra.toString(16)})`;
  return undefined;
}
