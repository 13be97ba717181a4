/** Every export target of a bundle behind one function (CLI, REST and IPC use it alike). */
import type { BundleDocument } from './bundle';
import { BundleError } from './errors';
import { exportCsv } from './export-csv';
import { exportSimpleKbsJson, exportSimpleKbsSql } from './export-simple-kbs';
import { exportVqsvScript } from './export-vqsv';

export const EXPORT_FORMATS = ['native', 'vqsv', 'simple-kbs', 'simple-kbs-sql', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportedFile {
  format: ExportFormat;
  contentType: string;
  /** A file name suffix that suits the content. */
  extension: string;
  text: string;
}

/** The native bundle as pretty JSON (the signature covers the canonical body, not this layout). */
export function exportNative(doc: BundleDocument): string {
  return JSON.stringify(doc, null, 2) + '\n';
}

/**
 * The formats an SEV-SNP bundle has: the native bundle and CSV. libvirt's validator script and simple-kbs
 * check SEV launch digests (SHA-256 over a host-driven launch); an SNP guest attests itself with a report.
 */
export const SNP_EXPORT_FORMATS: readonly ExportFormat[] = ['native', 'csv'];

/** The formats a bundle of this scheme can be exported in. */
export function exportFormatsFor(scheme: BundleDocument['body']['scheme']): readonly ExportFormat[] {
  return scheme === 'amd-sev-snp' ? SNP_EXPORT_FORMATS : EXPORT_FORMATS;
}

/** Renders a (signed) bundle in one of the export formats. */
export function exportBundle(doc: BundleDocument, format: ExportFormat): ExportedFile {
  if (!exportFormatsFor(doc.body.scheme).includes(format)) {
    throw new BundleError(
      'bundle-export-unsupported',
      `an SEV-SNP bundle exports as ${SNP_EXPORT_FORMATS.join(' or ')}: ${format} checks SEV launch digests, which an SNP guest does not have (it attests itself with a report)`,
    );
  }
  switch (format) {
    case 'native':
      return { format, contentType: 'application/json', extension: '.bundle.json', text: exportNative(doc) };
    case 'vqsv':
      return {
        format,
        contentType: 'text/x-shellscript',
        extension: '.vqsv.sh',
        text: exportVqsvScript(doc),
      };
    case 'simple-kbs':
      return {
        format,
        contentType: 'application/json',
        extension: '.simple-kbs.json',
        text: exportSimpleKbsJson(doc),
      };
    case 'simple-kbs-sql':
      return {
        format,
        contentType: 'application/sql',
        extension: '.simple-kbs.sql',
        text: exportSimpleKbsSql(doc),
      };
    case 'csv':
      return { format, contentType: 'text/csv', extension: '.csv', text: exportCsv(doc) };
  }
}
