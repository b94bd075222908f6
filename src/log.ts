import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Every key that could hold card data, wherever it sits in a log object. Redaction is the
 * second line of defence: card data lives in SensitiveDigits, which serialises as "[redacted]".
 */
const CARD_KEYS = ['pan', 'cardNumber', 'number', 'cvc', 'cvv', 'cvc2', 'securityCode', 'expiry', 'exp_month', 'exp_year', 'expiryMonth', 'expiryYear', 'card', 'digits', 'dtmf', 'encryptedCardNumber'];

const REDACT_PATHS: string[] = [
  ...CARD_KEYS,
  ...CARD_KEYS.map((k) => `*.${k}`),
  ...CARD_KEYS.map((k) => `*.*.${k}`),
  'headers.authorization',
  'req.headers.authorization',
  '*.apiKey',
  '*.secret',
];

interface LogOptions {
  level?: string;
  destination?: DestinationStream | string;
  name?: string;
}

/** The process logger (pino), configured once with central redaction. */
export function createLogger(opts: LogOptions = {}): Logger {
  const options = {
    name: opts.name ?? 'pay-ivr',
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination === undefined) return pino(options);
  const dest = typeof opts.destination === 'string' ? pino.destination({ dest: opts.destination, sync: false, mkdir: true }) : opts.destination;
  return pino(options, dest);
}

/** A logger that writes nothing (unit tests, benchmarks). */
export const silentLogger: Logger = pino({ level: 'silent' });
