/**
 * Export target: policy rows for simple-kbs (confidential-containers/simple-kbs), the key broker of the
 * SEV (non-SNP) confidential containers stack.
 *
 * Targeted schema (read from the simple-kbs sources as stored for reference: src/policy.rs, src/db.rs,
 * db/db-mysql.sql, default_policy.json; not checked against a running simple-kbs):
 * - `struct Policy { allowed_digests: Vec<String>, allowed_policies: Vec<u32>, min_fw_api_major: u32,
 *   min_fw_api_minor: u32, allowed_build_ids: Vec<u32> }` (serde JSON, the default_policy.json layout).
 * - Table `policy (id, allowed_digests, allowed_policies, min_fw_api_major, min_fw_api_minor,
 *   allowed_build_ids, create_date, delete_date, valid)`: the three lists are JSON text columns, a row is
 *   used only when valid = 1; secrets/keysets point at it through their `polid` column.
 * - Policy::verify: an empty list allows anything; allowed_digests are compared as strings with the
 *   connection's fw_digest, which sev_tools.rs base64-decodes: so digests are standard padded base64 of the
 *   32-byte launch digest. The API check is major > min, or major == min and minor >= min.
 */
import { fromHex, toBase64 } from '../sev/bytes';
import { bundleDigests, type BundleDocument } from './bundle';

/** simple-kbs's Policy, field for field. */
export interface SimpleKbsPolicy {
  allowed_digests: string[];
  allowed_policies: number[];
  min_fw_api_major: number;
  min_fw_api_minor: number;
  allowed_build_ids: number[];
}

/** The simple-kbs policy a bundle allows: its digests (base64), its one guest policy, min API and builds. */
export function simpleKbsPolicy(doc: BundleDocument): SimpleKbsPolicy {
  const b = doc.body;
  return {
    allowed_digests: bundleDigests(b).map((h) => toBase64(fromHex(h))),
    allowed_policies: [b.policy],
    min_fw_api_major: b['min-api']?.major ?? 0,
    min_fw_api_minor: b['min-api']?.minor ?? 0,
    allowed_build_ids: b['allowed-build-ids'] ?? [],
  };
}

/** The policy as simple-kbs's JSON (default_policy.json layout). */
export function exportSimpleKbsJson(doc: BundleDocument): string {
  return JSON.stringify(simpleKbsPolicy(doc), null, 2) + '\n';
}

/** SQL string literal: single quotes doubled (the JSON we embed has no backslash escapes to worry about). */
function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** An INSERT INTO policy statement (MySQL/MariaDB, PostgreSQL and SQLite all accept it). */
export function exportSimpleKbsSql(doc: BundleDocument): string {
  const p = simpleKbsPolicy(doc);
  const b = doc.body;
  const signer = doc.signature ? `signed by ${doc.signature.fingerprint}` : 'unsigned';
  return [
    `-- simple-kbs policy row for VM ${b.vm.id.replace(/[\r\n]/g, ' ')} (${p.allowed_digests.length} launch digest(s)),`,
    `-- from a SEV Attest bundle created ${b['created-at'].replace(/[\r\n]/g, ' ')}, ${signer}.`,
    '-- Link your secret or keyset to it: UPDATE secrets SET polid = <this row id> WHERE secret_id = ...;',
    'INSERT INTO policy (allowed_digests, allowed_policies, min_fw_api_major, min_fw_api_minor, allowed_build_ids, create_date, valid)',
    `VALUES (${sqlString(JSON.stringify(p.allowed_digests))}, ${sqlString(JSON.stringify(p.allowed_policies))}, ${p.min_fw_api_major}, ${p.min_fw_api_minor}, ${sqlString(JSON.stringify(p.allowed_build_ids))}, CURRENT_TIMESTAMP, 1);`,
    '',
  ].join('\n');
}
