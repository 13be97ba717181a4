/**
 * A strict JSON parser for guest-sent KBS bodies (docs/protocol.md §15). `JSON.parse` would round u64
 * report fields above 2^53 (policy, platform info, mitigation vectors) to the nearest double; here an
 * integer literal outside the safe range comes back as a `bigint`, every other number as a `number`.
 * Also refused, unlike `JSON.parse`: duplicate member names (two readers could see two different
 * values), nesting deeper than `maxDepth`, text longer than `maxChars`.
 */
import { KbsProtocolError, type KbsErrorKind } from './errors';

export interface JsonLimits {
  /** Longest accepted text, in UTF-16 code units. */
  maxChars?: number;
  /** Deepest accepted nesting of arrays and objects. */
  maxDepth?: number;
  /** The Trustee kind of the thrown error; default AttestationError (what Trustee names a bad /auth or /attest body). */
  errorKind?: KbsErrorKind;
}

export const DEFAULT_JSON_LIMITS = { maxChars: 1024 * 1024, maxDepth: 32 } as const;

export type LosslessJson =
  null | boolean | number | bigint | string | LosslessJson[] | { [key: string]: LosslessJson };

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

export function parseJsonLossless(text: string, limits: JsonLimits = {}): LosslessJson {
  const maxChars = limits.maxChars ?? DEFAULT_JSON_LIMITS.maxChars;
  const maxDepth = limits.maxDepth ?? DEFAULT_JSON_LIMITS.maxDepth;
  const kind = limits.errorKind ?? 'AttestationError';
  const fail = (msg: string, at?: number): never => {
    throw new KbsProtocolError(
      kind,
      at === undefined ? `invalid JSON: ${msg}` : `invalid JSON at offset ${at}: ${msg}`,
    );
  };
  if (typeof text !== 'string') fail('expected text');
  if (text.length > maxChars) fail(`the body is longer than ${maxChars} characters`);
  let pos = 0;

  const skipWs = () => {
    while (pos < text.length && WS.has(text.charCodeAt(pos))) pos++;
  };

  const parseString = (): string => {
    // pos is at the opening quote.
    pos++;
    let out = '';
    let runStart = pos;
    for (;;) {
      if (pos >= text.length) fail('unterminated string', runStart - 1);
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(runStart, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail('control character in a string', pos);
      if (c === 0x5c) {
        out += text.slice(runStart, pos);
        const e = text[pos + 1];
        if (e === 'u') {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape', pos);
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 6;
        } else if (e !== undefined && e in ESCAPES) {
          out += ESCAPES[e];
          pos += 2;
        } else {
          fail('bad escape', pos);
        }
        runStart = pos;
        continue;
      }
      pos++;
    }
  };

  const parseNumber = (): number | bigint => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m || m[0] === '-' || m[0].length === 0) fail('bad number', pos);
    const lit = m![0];
    pos += lit.length;
    if (m![1] === undefined && m![2] === undefined) {
      const n = Number(lit);
      if (Number.isSafeInteger(n)) return n;
      return BigInt(lit);
    }
    const n = Number(lit);
    if (!Number.isFinite(n)) fail('number out of range', pos - lit.length);
    return n;
  };

  const parseValue = (depth: number): LosslessJson => {
    skipWs();
    if (pos >= text.length) fail('unexpected end of text');
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`, pos);
      return c === '{' ? parseObject(depth + 1) : parseArray(depth + 1);
    }
    if (c === '"') return parseString();
    if (c === '-' || (c! >= '0' && c! <= '9')) return parseNumber();
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    return fail(`unexpected character ${JSON.stringify(c)}`, pos);
  };

  const parseArray = (depth: number): LosslessJson[] => {
    pos++;
    const out: LosslessJson[] = [];
    skipWs();
    if (text[pos] === ']') {
      pos++;
      return out;
    }
    for (;;) {
      out.push(parseValue(depth));
      skipWs();
      const c = text[pos];
      pos++;
      if (c === ']') return out;
      if (c !== ',') fail('expected , or ] in an array', pos - 1);
    }
  };

  const parseObject = (depth: number): { [key: string]: LosslessJson } => {
    pos++;
    const out: { [key: string]: LosslessJson } = {};
    skipWs();
    if (text[pos] === '}') {
      pos++;
      return out;
    }
    for (;;) {
      skipWs();
      if (text[pos] !== '"') fail('expected a member name', pos);
      const keyAt = pos;
      const key = parseString();
      if (Object.prototype.hasOwnProperty.call(out, key))
        fail(`duplicate member ${JSON.stringify(key)}`, keyAt);
      skipWs();
      if (text[pos] !== ':') fail('expected : after a member name', pos);
      pos++;
      const value = parseValue(depth);
      // defineProperty: a member named "__proto__" stays a plain member.
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      skipWs();
      const c = text[pos];
      pos++;
      if (c === '}') return out;
      if (c !== ',') fail('expected , or } in an object', pos - 1);
    }
  };

  const value = parseValue(0);
  skipWs();
  if (pos !== text.length) fail('text after the JSON value', pos);
  return value;
}
