/** Every export target of a bundle behind one function (CLI, REST and IPC use it alike). */
import type { BundleDocument } from './bundle';
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

/** Renders a (signed) bundle in one of the export formats. */
export function exportBundle(doc: BundleDocument, format: ExportFormat): ExportedFile {
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
