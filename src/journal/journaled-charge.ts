import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import type { Brand } from '../domain/brand.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { CardData } from '../domain/sensitive.js';
import type { PaymentGateway } from '../psp/types.js';
import { newIdempotencyKey } from '../psp/idempotency.js';
import { describeError } from '../errors.js';
import type { PaymentJournal } from './journal.js';
import type { JournalAttempt } from './types.js';

/** One charge attempt of a call (IVR dialogue or agent-assisted capture). */
export interface JournaledChargeRequest {
  gateway: PaymentGateway;
  /** Absent in unit tests of the call alone only. */
  journal: PaymentJournal | undefined;
  log: Logger;
  /** Local id of the call or capture: the id of its result record. */
  callRef: string;
  /** SIP Call-ID. */
  callId: string;
  profile: string;
  reference: string;
  amount: number;
  currency: string;
  card: CardData;
  brand: Brand;
  /** 1, 2, ... within the call. */
  attempt: number;
  /** Agent-assisted capture or IVR call (default): the mode of a result reconciliation writes. */
  mode?: 'automated' | 'agent';
  /** Genesys conversation id, kept in the attempt record (reconciliation's result carries it). */
  conversationId?: string | undefined;
  /** Non-card context for the PSP. */
  metadata: Readonly<Record<string, string>>;
}

export interface JournaledCharge {
  outcome: ChargeOutcome;
  last4: string;
  /** Time the gateway took, ms (0 when nothing was sent). */
  ms: number;
  /** False when the attempt could not be journaled (nothing was sent). */
  sent: boolean;
}

/**
 * The one way a charge is made: the idempotency key is made once for the attempt, the attempt is
 * recorded in the journal before the first send (no record, no send: the card is not charged
 * and the outcome is `failed`), the resilient gateway charges, and the journal is settled with
 * the outcome (or told why it is unknown, for reconciliation). Never throws for a PSP or journal
 * failure.
 */
export async function chargeWithJournal(req: JournaledChargeRequest): Promise<JournaledCharge> {
  const { gateway, journal, log } = req;
  const idempotencyKey = newIdempotencyKey();
  const last4 = req.card.pan.lastDigits(4);
  let attempt: JournalAttempt | undefined;
  if (journal !== undefined) {
    try {
      attempt = await journal.begin({
        id: randomUUID(),
        idempotencyKey,
        callRef: req.callRef,
        callId: req.callId,
        psp: gateway.name,
        profile: req.profile,
        amount: req.amount,
        currency: req.currency,
        reference: req.reference,
        brand: req.brand,
        last4,
        attempt: req.attempt,
        ...(req.mode === undefined ? {} : { mode: req.mode }),
        ...(req.conversationId === undefined ? {} : { conversationId: req.conversationId }),
      });
    } catch (e) {
      log.error({ err: describeError(e), attempt: req.attempt }, 'charge not sent: the attempt could not be journaled');
      return { outcome: { status: 'failed', reason: 'journal-unavailable' }, last4, ms: 0, sent: false };
    }
  }
  const t0 = Date.now();
  const outcome = await gateway.charge({ amount: req.amount, currency: req.currency, card: req.card, reference: req.reference, idempotencyKey, metadata: req.metadata });
  const ms = Date.now() - t0;
  if (journal !== undefined && attempt !== undefined) await settleAttempt(journal, attempt, outcome, log);
  return { outcome, last4, ms, sent: true };
}

/** Settles the attempt (approved/declined/not charged) or notes why its outcome is unknown; never throws. */
async function settleAttempt(journal: PaymentJournal, attempt: JournalAttempt, outcome: ChargeOutcome, log: Logger): Promise<void> {
  try {
    if (outcome.status === 'approved') await journal.settle(attempt, { outcome: 'approved', origin: 'call', transactionId: outcome.transactionId, authCode: outcome.authCode });
    else if (outcome.status === 'declined') await journal.settle(attempt, { outcome: 'declined', origin: 'call', transactionId: outcome.transactionId, declineClass: outcome.declineClass });
    // The PSP certainly did not charge (nothing reached its processing, or it refused the request).
    else if (outcome.status === 'failed') await journal.settle(attempt, { outcome: 'not-charged', origin: 'call' });
    else await journal.note(attempt, { unknownReason: outcome.reason });
  } catch (e) {
    // The attempt stays open in the journal: reconciliation will settle it by a lookup.
    log.error({ err: describeError(e), attempt: attempt.id }, 'journal not updated with the charge outcome');
  } finally {
    journal.release(attempt.id);
  }
}
