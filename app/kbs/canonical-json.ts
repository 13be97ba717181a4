/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), the form guest-components hashes into `report_data`
 * (docs/protocol.md §15): no whitespace, object members sorted by the UTF-16 code units of their names,
 * numbers in ECMAScript's shortest round-trip form, strings escaped as ECMAScript's JSON.stringify does.
 * Refused: non-finite numbers, bigints (JCS numbers are IEEE doubles: a bigint would be rounded),
 * strings with lone surrogates (JCS input must be I-JSON), and anything that is not JSON data.
 */
import { KbsProtocolError } from './errors';

function fail(msg: string): never {
  throw new KbsProtocolError('AttestationError', `canonical JSON: ${msg}`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) fail('a string holds a lone surrogate');
  return JSON.stringify(s);
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function write(value: unknown, depth: number): string {
  if (depth > 64) fail('nesting deeper than 64');
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) fail(`${String(value)} is not a JSON number`);
      // ES Number::toString is exactly the JCS number form (-0 becomes "0").
      return String(value);
    case 'string':
      return str(value);
    case 'bigint':
      return fail('a bigint has no exact IEEE double form');
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => write(v, depth + 1)).join(',')}]`;
      if (!isPlainObject(value)) fail('only plain objects and arrays are JSON data');
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks.
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${str(k)}:${write(v, depth + 1)}`).join(',')}}`;
    }
    default:
      return fail(`a ${typeof value} is not JSON data`);
  }
}

export function canonicalJson(value: unknown): string {
  if (value === undefined) fail('undefined is not JSON data');
  return write(value, 0);
}
