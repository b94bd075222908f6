import { createLogger, type Logger } from '../../src/log.js';
import type { PaymentResult } from '../../src/domain/outcome.js';

/** A debug logger whose lines are kept, for the card-data searches of the store and API tests. */
export function capturedLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { logger, lines };
}

/** An approved result record as the call layer stores it. */
export function sampleResult(id: string, extra: Partial<PaymentResult> = {}): PaymentResult & { id: string } {
  return {
    id,
    outcome: 'approved',
    mode: 'automated',
    currency: 'EUR',
    amount: 4990,
    reference: 'INV-77',
    conversationId: 'conv-1',
    brand: 'visa',
    last4: '4242',
    // Adyen pspReferences are 16 digits: allowed in this one field.
    transactionId: '8515131751004933',
    attempts: { charges: 1, declines: 0, invalidEntries: 0 },
    timings: { startedAt: '2025-01-01T10:00:00.000Z', durationMs: 42_000 },
    ...extra,
  };
}
