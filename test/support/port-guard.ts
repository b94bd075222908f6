import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';

/**
 * How the test projects keep out of each other's ports while they run side by side:
 * - two end-to-end lanes (each one file at a time) bind fixed ports, each lane inside its own
 *   bands (LANE_BANDS), all below FIXED_PORT_LIMIT;
 * - the unit project (files in parallel) binds port 0 only, and the kernel hands out ephemeral
 *   ports from EPHEMERAL_RANGE, above every fixed port (scripts/test-all.sh sets the range).
 * Each project's setup file installs the guard for its side, so a file that breaks the rule fails
 * at the bind with a message naming the port, instead of flaking when another file holds it.
 */

/** Every fixed port a test binds (SIP, RTP, Redis, admin, peers) is below this. */
export const FIXED_PORT_LIMIT = 54_000;
/** The kernel's ephemeral range while the tests run (net.ipv4.ip_local_port_range). */
export const EPHEMERAL_RANGE = [54_000, 60_999] as const;

export type E2eLane = 'e2e-a' | 'e2e-b';
export type PortSide = 'unit' | E2eLane;

/** The fixed ports each end-to-end lane may bind (inclusive ranges); no port is in both. */
export const LANE_BANDS: Record<E2eLane, readonly (readonly [number, number])[]> = {
  'e2e-a': [
    [19_000, 25_999],
    [34_000, 37_999],
  ],
  'e2e-b': [
    [5_000, 18_999],
    [26_000, 33_999],
    [38_000, FIXED_PORT_LIMIT - 1],
  ],
};

const inBands = (lane: E2eLane, port: number): boolean => LANE_BANDS[lane].some(([lo, hi]) => port >= lo && port <= hi);

/** Why a bind of `port` is against the rule of `side`, or undefined when it is fine. */
export function portViolation(side: PortSide, port: number): string | undefined {
  if (!Number.isInteger(port) || port === 0) return undefined;
  if (side === 'unit') return `the unit project binds port 0 only (got fixed port ${port}): fixed ports belong to the end-to-end lanes (vitest.config.ts)`;
  if (port >= FIXED_PORT_LIMIT) return `fixed test port ${port} is inside the ephemeral range ${EPHEMERAL_RANGE.join('-')} the unit project uses: pick one below ${FIXED_PORT_LIMIT}`;
  if (!inBands(side, port)) return `fixed test port ${port} is outside the bands of lane ${side} (${LANE_BANDS[side].map(([a, b]) => `${a}-${b}`).join(', ')}): the other lane may hold it (test/support/port-guard.ts)`;
  return undefined;
}

/** The kernel's ephemeral port range now, or undefined when /proc does not say. */
export function kernelEphemeralRange(): [number, number] | undefined {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi) ? [lo, hi] : undefined;
  } catch {
    return undefined;
  }
}

function portOf(args: unknown[]): number | undefined {
  const a = args[0];
  if (typeof a === 'number') return a;
  if (typeof a === 'string' && /^\d+$/.test(a)) return Number(a);
  if (a !== null && typeof a === 'object' && 'port' in a) {
    const p = (a as { port?: unknown }).port;
    if (typeof p === 'number') return p;
    if (typeof p === 'string' && /^\d+$/.test(p)) return Number(p);
  }
  return undefined;
}

let installed: PortSide | undefined;

/** Makes every in-process listen/bind of this worker follow the rule of `side`. */
export function installPortGuard(side: PortSide): void {
  if (installed !== undefined) return;
  installed = side;
  const check = (args: unknown[]): void => {
    const port = portOf(args);
    const why = port === undefined ? undefined : portViolation(side, port);
    if (why !== undefined) throw new Error(why);
  };
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function guardedListen(this: net.Server, ...args: unknown[]) {
    check(args);
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof listen;
  const bind = dgram.Socket.prototype.bind;
  dgram.Socket.prototype.bind = function guardedBind(this: dgram.Socket, ...args: unknown[]) {
    check(args);
    return (bind as (...a: unknown[]) => dgram.Socket).apply(this, args);
  } as typeof bind;
}
