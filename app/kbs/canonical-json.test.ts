import canonicalize from 'canonicalize';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json';
import { KbsProtocolError } from './errors';

/** A small deterministic PRNG so a failure can be reproduced from its seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const CHARS = [
  'a',
  'B',
  'z',
  '\u00e9',
  '\u20ac',
  '\ud83d\ude00',
  '\u0000',
  '\u001f',
  '"',
  '\\',
  '/',
  '\n',
  '\u2028',
  'é',
  '\uffff',
  '\ue000',
  ' ',
  '1',
];

function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) s += CHARS[Math.floor(r() * CHARS.length)];
  return s;
}

function randomNumber(r: () => number): number {
  const pick = Math.floor(r() * 8);
  const buf = randomBytes(8);
  switch (pick) {
    case 0:
      return Math.floor(r() * 1000) - 500;
    case 1:
      return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    case 2:
      return buf.readDoubleLE(0) || 0; // any finite double bit pattern (NaN/inf replaced below)
    case 3:
      return -0;
    case 4:
      return Number.MAX_SAFE_INTEGER * (r() < 0.5 ? 1 : -1);
    case 5:
      return 1e21 * r();
    case 6:
      return 5e-324 * Math.floor(r() * 10);
    default:
      return r();
  }
}

function randomValue(r: () => number, depth: number): unknown {
  const t = Math.floor(r() * (depth > 3 ? 5 : 7));
  switch (t) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2: {
      const n = randomNumber(r);
      return Number.isFinite(n) ? n : 0;
    }
    case 3:
    case 4:
      return randomString(r);
    case 5:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) o[randomString(r)] = randomValue(r, depth + 1);
      return o;
    }
  }
}

describe('canonicalJson (RFC 8785)', () => {
  it('matches the canonicalize package on many random values', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const v = randomValue(rng(seed), 0);
      expect(canonicalJson(v), `seed ${seed}`).toBe(canonicalize(v));
    }
  });

  it('sorts member names by UTF-16 code units, not code points', () => {
    // U+E000 sorts after the surrogate pair of U+1F600 by code point order, before it by code units.
    const v = { '\ue000': 1, '\ud83d\ude00': 2, a: 3, '': 4 };
    expect(canonicalJson(v)).toBe('{"":4,"a":3,"\ud83d\ude00":2,"\ue000":1}');
  });

  it('writes the RFC 8785 examples', () => {
    expect(
      canonicalJson({
        numbers: [Number('333333333.33333329'), 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      }),
    ).toBe('{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}');
    expect(canonicalJson({ b: [-0, 1, 'x'], a: { d: true, c: null } })).toBe(
      '{"a":{"c":null,"d":true},"b":[0,1,"x"]}',
    );
    expect(canonicalJson('\u20ac$\u000f\nA\'B"\\\\"/')).toBe('"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"');
  });

  it('refuses what has no canonical form', () => {
    for (const bad of [
      NaN,
      Infinity,
      -Infinity,
      1n,
      [2n],
      { a: NaN },
      '\ud800',
      'x\udc00',
      new Date(0),
      () => 1,
      Symbol('s'),
      undefined,
      new Uint8Array(2),
    ]) {
      expect(() => canonicalJson(bad), String(typeof bad)).toThrow(KbsProtocolError);
    }
  });
});
