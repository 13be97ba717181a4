/**
 * Client groups: one IPv4 /24 or one IPv6 /64 counts as one client for budgets (rate limits, connection
 * caps, pending approvals), so a host with many addresses in its subnet gets one budget, not one each.
 */
import { isIP } from 'node:net';

/** Expands an IPv6 address to its 8 hextets (undefined when it is not one). */
function ipv6Hextets(a: string): number[] | undefined {
  let s = a.split('%')[0]!;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (p: string) => (p === '' ? [] : p.split(':').map((h) => parseInt(h, 16)));
  const head = parse(halves[0]!);
  const back = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - tail.length - head.length - back.length : 0;
  const all = [...head, ...new Array<number>(Math.max(0, fill)).fill(0), ...back, ...tail];
  return all.length === 8 && all.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff) ? all : undefined;
}

/**
 * The client group of an address: IPv4 by /24 ("192.0.2.0/24"), IPv6 by /64 ("2001:db8:1:2::/64"),
 * IPv4-mapped IPv6 as IPv4. Anything else is its own group.
 */
export function clientGroup(address: string): string {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(a) === 4) return `${a.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIP(a) === 6) {
    const h = ipv6Hextets(a);
    if (h)
      return `${h
        .slice(0, 4)
        .map((x) => x.toString(16))
        .join(':')}::/64`;
  }
  return a;
}
