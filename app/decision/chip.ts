/**
 * Chip identity: a host's cpu-id is a claim. It is proven when the cert-chain's CEK holds the same key
 * as the CEK AMD's key server gives for that chip id (or the one the owner pinned for it): the CEK is
 * derived from the chip's secrets and AMD signs it per chip id.
 */
import { cekKeysEqual, splitCertChain } from '../sev/chain';

/** Where the proof came from ('unproven' when no reference could be compared or it differed). */
export type ChipProofSource = 'pinned' | 'key-server' | 'unproven' | 'none';

export interface ChipProof {
  /** The claimed chip id, lower-case hex (undefined when the host sent none). */
  claimed: string | undefined;
  proven: boolean;
  source: ChipProofSource;
  /** Why it is unproven (for the owner). */
  why?: string;
}

/** True when the cert-chain's CEK is the reference CEK for the claimed chip (same public key). */
export function cekProvesChip(certChain: Uint8Array, referenceCek: Uint8Array): boolean {
  return cekKeysEqual(splitCertChain(certChain).cek, referenceCek);
}
