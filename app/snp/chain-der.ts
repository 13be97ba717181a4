/**
 * A minimal, strict ASN.1 DER reader for the X.509 certificates and the CRL of the SNP chain
 * (docs/protocol.md §12). Only what AMD's certificates use: single-byte tags, definite minimal lengths.
 * Every read is bounds-checked and every failure is an SnpError('bad-der'), never an exception from
 * an out-of-range index.
 */
import { SnpError } from './errors';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One TLV: `tag` is the whole identifier octet (class, constructed bit and number). */
export interface DerNode {
  readonly tag: number;
  /** The whole TLV (header and content), a view into the input. */
  readonly bytes: Uint8Array;
  /** The content octets, a view into the input. */
  readonly content: Uint8Array;
}

function fail(what: string, msg: string): never {
  throw new SnpError('bad-der', `${what}: ${msg}`);
}

/** Reads the TLV starting at `offset`; returns it and the offset just past it. */
export function readTlv(buf: Uint8Array, offset: number, what: string): { node: DerNode; next: number } {
  if (offset + 2 > buf.length) fail(what, `truncated header at offset ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) fail(what, `multi-byte tag at offset ${offset} is not supported`);
  const first = buf[offset + 1]!;
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) fail(what, `indefinite length at offset ${offset} (not DER)`);
    if (n > 4) fail(what, `length of ${n} octets at offset ${offset} is too large`);
    if (offset + 2 + n > buf.length) fail(what, `truncated length at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    if (buf[offset + 2]! === 0 || len < 0x80) fail(what, `non-minimal length at offset ${offset} (not DER)`);
    header = 2 + n;
  }
  const end = offset + header + len;
  if (end > buf.length) fail(what, `value at offset ${offset} runs past the end (${len} bytes announced)`);
  return {
    node: { tag, bytes: buf.subarray(offset, end), content: buf.subarray(offset + header, end) },
    next: end,
  };
}

/** Reads exactly one TLV filling the whole buffer. */
export function readDer(buf: Uint8Array, what: string): DerNode {
  const { node, next } = readTlv(buf, 0, what);
  if (next !== buf.length) fail(what, `${buf.length - next} trailing bytes after the value`);
  return node;
}

/** The TLVs inside a constructed node, which must fill its content exactly. */
export function children(node: DerNode, what: string): DerNode[] {
  if ((node.tag & 0x20) === 0) fail(what, `tag 0x${node.tag.toString(16)} is not constructed`);
  const out: DerNode[] = [];
  let off = 0;
  while (off < node.content.length) {
    const { node: c, next } = readTlv(node.content, off, what);
    out.push(c);
    off = next;
  }
  return out;
}

/** Checks a node's tag. */
export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) fail(what, `missing (expected tag 0x${tag.toString(16)})`);
  if (node.tag !== tag) fail(what, `expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`);
  return node;
}

/** A SEQUENCE's children, checking the tag. */
export function sequence(node: DerNode | undefined, what: string): DerNode[] {
  return children(expectTag(node, TAG.SEQUENCE, what), what);
}

/** An OBJECT IDENTIFIER as dotted text. */
export function decodeOid(node: DerNode | undefined, what: string): string {
  const c = expectTag(node, TAG.OID, what).content;
  if (c.length === 0) fail(what, 'empty OID');
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (v === 0 && b === 0x80) fail(what, 'non-minimal OID arc');
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) fail(what, 'OID arc too large');
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = v < 80 ? Math.floor(v / 40) : 2;
        arcs.push(first, v - 40 * first);
      } else arcs.push(v);
      v = 0;
    } else if (i === c.length - 1) fail(what, 'truncated OID arc');
  }
  return arcs.join('.');
}

/** An INTEGER's content octets (two's complement, minimal), checked for DER minimality. */
export function integerBytes(node: DerNode | undefined, what: string): Uint8Array {
  const c = expectTag(node, TAG.INTEGER, what).content;
  if (c.length === 0) fail(what, 'empty INTEGER');
  if (c.length > 1 && ((c[0] === 0 && (c[1]! & 0x80) === 0) || (c[0] === 0xff && (c[1]! & 0x80) !== 0))) {
    fail(what, 'non-minimal INTEGER');
  }
  return c;
}

/** A non-negative INTEGER that fits a JavaScript number exactly. */
export function decodeSmallUint(node: DerNode | undefined, what: string): number {
  const c = integerBytes(node, what);
  if ((c[0]! & 0x80) !== 0) fail(what, 'negative INTEGER');
  if (c.length > 6) fail(what, 'INTEGER too large');
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}

/** The bits of a BIT STRING with no unused bits (signatures, keys). */
export function decodeBitString(node: DerNode | undefined, what: string): Uint8Array {
  const c = expectTag(node, TAG.BIT_STRING, what).content;
  if (c.length === 0) fail(what, 'empty BIT STRING');
  if (c[0] !== 0) fail(what, `BIT STRING with ${c[0]} unused bits`);
  return c.subarray(1);
}

function digits(s: string, what: string): number {
  if (!/^[0-9]+$/.test(s)) fail(what, `bad time digits '${s}'`);
  return Number(s);
}

/** UTCTime (YYMMDDHHMMSSZ, years 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ). */
export function decodeTime(node: DerNode | undefined, what: string): Date {
  if (!node) fail(what, 'missing time');
  const s = Buffer.from(node.content).toString('latin1');
  let year: number;
  let rest: string;
  if (node.tag === TAG.UTC_TIME) {
    if (s.length !== 13 || !s.endsWith('Z')) fail(what, `bad UTCTime '${s}'`);
    const yy = digits(s.slice(0, 2), what);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = s.slice(2, 12);
  } else if (node.tag === TAG.GENERALIZED_TIME) {
    if (s.length !== 15 || !s.endsWith('Z')) fail(what, `bad GeneralizedTime '${s}'`);
    year = digits(s.slice(0, 4), what);
    rest = s.slice(4, 14);
  } else {
    fail(what, `expected a time, got tag 0x${node.tag.toString(16)}`);
  }
  const [mo, d, h, mi, se] = [0, 2, 4, 6, 8].map((i) => digits(rest.slice(i, i + 2), what)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const t = Date.UTC(year, mo - 1, d, h, mi, se);
  const back = new Date(t);
  if (
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== se
  ) {
    fail(what, `invalid date '${s}'`);
  }
  return back;
}

/** Text of a string type (UTF8String, PrintableString, IA5String). */
export function decodeString(node: DerNode | undefined, what: string): string {
  if (!node) fail(what, 'missing string');
  if (node.tag === TAG.UTF8_STRING) return Buffer.from(node.content).toString('utf8');
  if (node.tag === TAG.PRINTABLE_STRING || node.tag === TAG.IA5_STRING) {
    return Buffer.from(node.content).toString('latin1');
  }
  fail(what, `expected a string, got tag 0x${node.tag.toString(16)}`);
}
