/**
 * The canonical JSON form a bundle signature covers: object keys sorted by UTF-16 code unit order (what
 * JavaScript's default sort does; identical to code point order for the ASCII keys bundles use), no
 * whitespace, strings escaped as JSON.stringify escapes them, integers only (no floats, no exponents),
 * no undefined, UTF-8 bytes. Documented in docs/bundles.md.
 */
import { BundleError } from './errors';

function canonicalValue(v: unknown, path: string): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isSafeInteger(v)) {
        throw new BundleError('bundle-invalid', `${path}: only safe integers are allowed, got ${v}`);
      }
      return String(v);
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x, i) => canonicalValue(x, `${path}[${i}]`)).join(',')}]`;
      const entries = Object.keys(v as Record<string, unknown>)
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .sort();
      return `{${entries
        .map(
          (k) => `${JSON.stringify(k)}:${canonicalValue((v as Record<string, unknown>)[k], `${path}.${k}`)}`,
        )
        .join(',')}}`;
    }
    default:
      throw new BundleError('bundle-invalid', `${path}: a ${typeof v} cannot be serialized`);
  }
}

/** The canonical JSON text of a value (see the file comment). */
export function canonicalJson(v: unknown): string {
  return canonicalValue(v, '$');
}

/** The canonical JSON as UTF-8 bytes. */
export function canonicalBytes(v: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(v));
}
