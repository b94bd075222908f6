import { join } from 'node:path';

/**
 * The configuration the end-to-end suites start pay-ivr with: one place for the payment profile
 * they share (USD, context amount, sandbox PSP, the dialogue's timeouts) and the node settings
 * around it (loopback SIP and RTP, the journal inside the run's folder so the card-digit scan
 * covers it, debug logs: the scan must hold at the most verbose shipped level).
 */

/** The default payment profile of the end-to-end suites; `over` replaces or adds keys. */
export function e2eProfile(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    language: 'en-US',
    currency: 'USD',
    amountSource: 'context',
    minAmount: 100,
    maxAmount: 500_000,
    allowedBrands: ['visa', 'mastercard', 'amex'],
    maxDeclines: 2,
    timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
    psp: { type: 'sandbox' },
    handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: 'genesys.example' },
    ...over,
  };
}

export interface E2eNode {
  /** The run's folder: the journal spool goes in `<dir>/data`. */
  dir: string;
  sip: { transport: 'udp' | 'tcp'; host?: string; port: number }[];
  rtp: [portMin: number, portMax: number];
  profiles: Record<string, Record<string, unknown>>;
  /** Anything else of the config (store, admin, ...). */
  rest?: Record<string, unknown>;
}

/** Raw config (for parseConfig) of one node of an end-to-end suite. */
export function e2eNodeConfig(o: E2eNode): Record<string, unknown> {
  return {
    sip: { listen: o.sip.map((l) => ({ host: '127.0.0.1', ...l })) },
    rtp: { host: '127.0.0.1', portMin: o.rtp[0], portMax: o.rtp[1], noRtpTimeoutMs: 120_000 },
    journal: { dataDir: join(o.dir, 'data') },
    log: { level: 'debug' },
    profiles: o.profiles,
    ...o.rest,
  };
}
