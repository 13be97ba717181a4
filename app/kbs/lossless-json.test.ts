import { describe, expect, it } from 'vitest';
import { KbsProtocolError } from './errors';
import { parseJsonLossless } from './lossless-json';

function refuses(text: string, re: RegExp, limits = {}) {
  let err: unknown;
  try {
    parseJsonLossless(text, limits);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KbsProtocolError);
  expect((err as KbsProtocolError).kind).toBe('AttestationError');
  expect((err as Error).message).toMatch(re);
}

describe('parseJsonLossless', () => {
  it('parses what JSON.parse parses, with the same result for safe numbers', () => {
    const samples = [
      '{"a":[1,2.5,-3e2,"x\\u00e9\\n",true,false,null],"b":{"c":{}},"d":[]}',
      ' [ 0 , -0.0 , 1E+2 , "\\"\\\\\\/\\b\\f\\r\\t" ] ',
      '"\\ud83d\\ude00"',
      '9007199254740991',
    ];
    for (const s of samples) expect(parseJsonLossless(s)).toEqual(JSON.parse(s));
  });

  it('returns integers outside the safe range as exact bigints', () => {
    const v = parseJsonLossless(
      '{"p":18446744073709551615,"n":-9007199254740993,"s":9007199254740992}',
    ) as Record<string, unknown>;
    expect(v.p).toBe(18446744073709551615n);
    expect(v.n).toBe(-9007199254740993n);
    expect(v.s).toBe(9007199254740992n);
    // A fraction or exponent stays a double.
    expect(parseJsonLossless('1e300')).toBe(1e300);
  });

  it('keeps a member named __proto__ as data', () => {
    const v = parseJsonLossless('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses malformed text with a plain message', () => {
    refuses('', /unexpected end/);
    refuses('{"a":1,}', /member name/);
    refuses('[1,]', /unexpected character/);
    refuses('{"a" 1}', /expected :/);
    refuses('01', /text after/);
    refuses('1.', /text after/);
    refuses('-', /unexpected|bad number/);
    refuses('"a\u0001"', /control character/);
    refuses('"\\x"', /bad escape/);
    refuses('"\\u12g4"', /\\u escape/);
    refuses('"abc', /unterminated/);
    refuses('NaN', /unexpected character/);
    refuses('tru', /unexpected character/);
    refuses('{} {}', /text after/);
    refuses("{'a':1}", /member name/);
    refuses('1e999', /out of range/);
  });

  it('refuses duplicate member names', () => {
    refuses('{"a":1,"a":2}', /duplicate member "a"/);
    refuses('{"x":{"k":1,"\\u006b":2}}', /duplicate member "k"/);
  });

  it('enforces the depth and size limits', () => {
    expect(parseJsonLossless('[[[1]]]', { maxDepth: 3 })).toEqual([[[1]]]);
    refuses('[[[[1]]]]', /nesting deeper than 3/, { maxDepth: 3 });
    refuses('"' + 'a'.repeat(100) + '"', /longer than 50/, { maxChars: 50 });
    // The default depth limit stops a deeply nested body before the stack does.
    refuses('['.repeat(100000), /nesting deeper/);
  });

  it('names the caller-chosen Trustee kind', () => {
    try {
      parseJsonLossless('{', { errorKind: 'SerdeError' });
      expect.unreachable();
    } catch (e) {
      expect((e as KbsProtocolError).kind).toBe('SerdeError');
    }
  });
});
