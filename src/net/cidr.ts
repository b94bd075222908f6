import { isIPv4, isIPv6 } from 'node:net';

interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** "10.0.0.0/8", "2001:db8::/32" or a bare address (full-length prefix); undefined when not one. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = (slash < 0 ? text : text.slice(0, slash)).trim();
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const bits = slash < 0 ? String(max) : text.slice(slash + 1).trim();
  // Digits only: Number('') is 0, and "10.0.0.0/" must not become "everyone".
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return { address, prefix: Number(bits), family };
}

/** Message for a bad allow-list entry (config validation and the constructor say the same). */
export const ALLOW_LIST_ENTRY_PROBLEM = 'not an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)';

/** '::ffff:10.1.2.3' (IPv4 on a dual-stack socket) -> '10.1.2.3', so IPv4 rules and rate keys apply. */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m !== null && isIPv4(m[1] as string) ? (m[1] as string) : address;
}
