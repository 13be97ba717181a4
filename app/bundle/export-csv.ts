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

/** SEV-SNP rows: the measurement and every input of it (the SEV columns stay as they were). */
const SNP_COLUMNS = [
  'row',
  'vm_id',
  'scheme',
  'policy',
  'cpus',
  'cpu_family',
  'cpu_model',
  'cpu_stepping',
  'cpu_eax',
  'cpu_name',
  'vmm_type',
  'guest_features',
  'kernel_hashes_table',
  'kernel_hash',
  'initrd_hash',
  'cmdline_hash',
  'firmware_sha256',
  'ovmf_hash',
  'measurement_hex',
  'measurement_base64',
] as const;

function exportSnpCsv(doc: BundleDocument): string {
  const b = doc.body;
  const lines = [SNP_COLUMNS.join(',')];
  for (const r of b.rows) {
    const s = r['cpu-signature'];
    const k = r['kernel-hashes-table'] ? b.kernel : undefined;
    lines.push(
      [
        r.row,
        b.vm.id,
        b.scheme,
        '0x' + b.policy.toString(16).padStart(5, '0'),
        r.cpus,
        s?.family,
        s?.model,
        s?.stepping,
        s?.eax,
        s?.name,
        r['vmm-type'],
        r['guest-features'],
        r['kernel-hashes-table'],
        k?.['kernel-hash'],
        k?.['initrd-hash'],
        k?.['cmdline-hash'],
        b.firmware.sha256,
        b.firmware['ovmf-hash'],
        r.digest,
        toBase64(fromHex(r.digest)),
      ]
        .map(csvField)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** One line per row with the inputs that produced it. */
export function exportCsv(doc: BundleDocument): string {
  if (doc.body.scheme === 'amd-sev-snp') return exportSnpCsv(doc);
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
