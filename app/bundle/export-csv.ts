/** Export target: the digest matrix as CSV (RFC 4180: CRLF line ends, fields quoted when needed). */
import { fromHex, toBase64 } from '../sev/bytes';
import type { BundleDocument } from './bundle';

const COLUMNS = [
  'row',
  'vm_id',
  'scheme',
  'policy',
  'sev_es',
  'cpus',
  'cpu_family',
  'cpu_model',
  'cpu_stepping',
  'cpu_eax',
  'cpu_name',
  'vmsa_variant',
  'kernel_hashes_table',
  'firmware_sha256',
  'digest_hex',
  'digest_base64',
] as const;

function csvField(v: string | number | boolean | undefined): string {
  const s = v === undefined ? '' : String(v);
  // A leading = + - @ would be a formula in spreadsheets; such a value is quoted and prefixed with '.
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\r\n']/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** One line per row with the inputs that produced it. */
export function exportCsv(doc: BundleDocument): string {
  const b = doc.body;
  const lines = [COLUMNS.join(',')];
  for (const r of b.rows) {
    const s = r['cpu-signature'];
    lines.push(
      [
        r.row,
        b.vm.id,
        b.scheme,
        '0x' + b.policy.toString(16).padStart(4, '0'),
        r['sev-es'],
        r.cpus,
        s?.family,
        s?.model,
        s?.stepping,
        s?.eax,
        s?.name,
        r['vmsa-variant'],
        r['kernel-hashes-table'],
        b.firmware.sha256,
        r.digest,
        toBase64(fromHex(r.digest)),
      ]
        .map(csvField)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}
