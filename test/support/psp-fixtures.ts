import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';
import { SensitiveDigits, type CardData } from '../../src/domain/sensitive.js';
import type { ChargeRequest } from '../../src/psp/types.js';
import { newIdempotencyKey } from '../../src/psp/idempotency.js';
import type { ResilientOptions } from '../../src/psp/resilient.js';

/** Expiry and security codes every PSP test uses, so the leak scan knows what to look for. */
export const TEST_EXPIRY = '0839';
export const TEST_CVC = '917';
export const TEST_CVC_AMEX = '7391';

/** Every card-data token the leak scan searches for, besides the PANs. */
export const CARD_TOKENS = [TEST_EXPIRY, TEST_CVC, TEST_CVC_AMEX, '08/39', '08/2039', '2039'];

/** A pino logger at trace level writing into memory, so tests can read every line. */
export function captureLogs(): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'trace', destination: { write: (s: string) => void stream.write(s) } });
  return { logger, lines: () => chunks.join('').split('\n').filter((l) => l.length > 0) };
}

/** Card data for a test number; `cvc: null` = a card without security code. */
export function card(pan: string, cvc?: string | null, expiry = TEST_EXPIRY): CardData {
  const code = cvc === null ? undefined : (cvc ?? (pan.startsWith('3') && pan.length === 15 ? TEST_CVC_AMEX : TEST_CVC));
  return { pan: SensitiveDigits.from(pan), expiry: SensitiveDigits.from(expiry), securityCode: code === undefined ? undefined : SensitiveDigits.from(code) };
}

export function chargeRequest(pan: string, over: Partial<ChargeRequest> = {}): ChargeRequest {
  return {
    amount: 4990,
    currency: 'EUR',
    card: card(pan),
    reference: 'INV-77',
    idempotencyKey: newIdempotencyKey(),
    metadata: { conversationId: 'conv-1', accountId: 'C-1001' },
    ...over,
  };
}

/** Fast retry settings for tests (the per-send timeout is the adapter's timeoutMs). */
export const FAST_RETRY: ResilientOptions = {
  budgetMs: 4_000,
  maxSends: 3,
  backoffMs: 20,
  maxBackoffMs: 80,
  breakerFailures: 3,
  breakerResetMs: 250,
};

export const ADAPTER_TIMEOUT_MS = 800;

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

function tokenRe(t: string): RegExp {
  return new RegExp(`(?<![0-9A-Za-z])${t.replace(/[/]/g, '\\/')}(?![0-9A-Za-z])`);
}

/**
 * Card data found in texts (log lines, dumps): any full PAN anywhere; expiry and security-code
 * tokens as whole tokens inside string values (timestamps and UUIDs, which are random digits by
 * design, are skipped). Returns the offending excerpts, masked.
 */
export function findCardData(texts: readonly string[], pans: readonly string[], tokens: readonly string[] = CARD_TOKENS): string[] {
  const hits: string[] = [];
  const res = tokens.map((t) => ({ t, re: tokenRe(t) }));
  const scanString = (s: string, where: string): void => {
    const clean = s.replace(UUID, '<uuid>');
    for (const { t, re } of res) if (re.test(clean)) hits.push(`${where}: token ${t.slice(0, 1)}*** in "${clean.slice(0, 80).replace(re, '<hit>')}"`);
  };
  const walk = (v: unknown, key: string, where: string): void => {
    if (typeof v === 'string') {
      if (key !== 'time') scanString(v, where);
    } else if (Array.isArray(v)) {
      for (const x of v) walk(x, key, where);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (tokens.some((t) => tokenRe(t).test(k))) hits.push(`${where}: token in key`);
        walk(x, k, where);
      }
    }
  };
  texts.forEach((text, i) => {
    for (const pan of pans) if (text.includes(pan)) hits.push(`text ${i}: full PAN ending ${pan.slice(-4)}`);
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line) as unknown;
      } catch {
        scanString(line.replace(/\d{4}-\d{2}-\d{2}T[\d:.]+Z/g, '<time>'), `text ${i}`);
        continue;
      }
      walk(parsed, '', `text ${i}`);
    }
  });
  return hits;
}
