import { isIPv4, isIPv6 } from 'node:net';

/**
 * Whether a configured host is a loopback address: 127.0.0.0/8, ::1 (also written in full or as
 * ::ffff:127.x.y.z) or the name "localhost". Any other name counts as not loopback (it may resolve
 * anywhere), and so do the wildcard addresses 0.0.0.0 and :: (they listen on every interface).
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === 'localhost.') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (!isIPv6(h) || h.includes('%')) return false;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (mapped !== null) return isIPv4(mapped[1] as string) && (mapped[1] as string).startsWith('127.');
  return expandIPv6(h) === '0000:0000:0000:0000:0000:0000:0000:0001';
}

/** An IPv6 literal (no embedded IPv4) in its full 8-group form. */
function expandIPv6(h: string): string | undefined {
  if (h.includes('.')) return undefined;
  const [head = '', tail] = h.split('::');
  const a = head === '' ? [] : head.split(':');
  const b = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - a.length - b.length }, () => '0');
  return [...a, ...zeros, ...b].map((g) => g.padStart(4, '0')).join(':');
}
