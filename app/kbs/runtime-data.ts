/**
 * The 64 bytes an SNP guest puts in `report_data` to bind its report to the KBS session
 * (docs/protocol.md §15). guest-components (kbs_protocol `rcar_client.rs`, `get_composite_evidence`)
 * builds `{"tee-pubkey", "nonce", "additional-evidence"}`, serialises it with RFC 8785, hashes it with
 * the session's hash algorithm (SHA-384 unless the /auth reply's `extra-params` names
 * `selected-hash-algorithm`; SEV Attest never does) and the SNP attester zero-pads the digest to 64 bytes.
 *
 * `additional-evidence` is the same string the guest sends as `tee-evidence.additional_evidence` (the
 * composite evidence's device evidence; "" when the guest has no extra device). The service must hash
 * that received string, not a constant "", or a guest with device evidence could never match.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json';

export const KBS_REPORT_DATA_SIZE = 64;

export function kbsRuntimeDataJson(nonce: string, teePubkey: object, additionalEvidence = ''): string {
  return canonicalJson({ nonce, 'tee-pubkey': teePubkey, 'additional-evidence': additionalEvidence });
}

export function kbsReportData(nonce: string, teePubkey: object, additionalEvidence = ''): Uint8Array {
  const digest = createHash('sha384')
    .update(kbsRuntimeDataJson(nonce, teePubkey, additionalEvidence), 'utf8')
    .digest();
  const out = new Uint8Array(KBS_REPORT_DATA_SIZE);
  out.set(digest, 0);
  return out;
}
