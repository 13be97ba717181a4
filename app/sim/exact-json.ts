/**
 * JSON text with exact integers: a bigint is written as its decimal digits, as serde_json writes a u64,
 * so values beyond 2^53 (the SNP report's plat_info, mitigation vectors) reach the service unrounded.
 * JSON.stringify cannot do this (it throws on bigint, and a number would lose the low bits).
 */
export type ExactJson =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly ExactJson[]
  | { readonly [key: string]: ExactJson | undefined };

export function stringifyExact(value: ExactJson | undefined): string {
  if (value === undefined) throw new TypeError('stringifyExact: undefined has no JSON form');
  return write(value);
}

function write(v: ExactJson): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString(10);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`stringifyExact: ${v} has no JSON form`);
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
        throw new TypeError(`stringifyExact: ${v} is past 2^53; pass it as a bigint`);
      }
      return JSON.stringify(v);
    case 'boolean':
    case 'string':
      return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${(v as readonly ExactJson[]).map(write).join(',')}]`;
  const parts: string[] = [];
  for (const [k, item] of Object.entries(v as Record<string, ExactJson | undefined>)) {
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${write(item)}`);
  }
  return `{${parts.join(',')}}`;
}
