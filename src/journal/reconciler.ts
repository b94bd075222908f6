import type { Logger } from '../log.js';
import type { PaymentResult } from '../domain/outcome.js';
import type { PaymentGateway } from '../psp/types.js';
import type { ResultStore } from '../store/types.js';
import { describeError } from '../errors.js';
import type { PaymentJournal, Settlement } from './journal.js';
import type { JournalAttempt } from './types.js';

/** One attempt looked at by a reconciliation round. `open`: the PSP could not tell; retried later. */
export interface ReconcileEntry {
  attemptId: string;
  callRef: string;
  reference: string;
  amount: number;
  currency: string;
  outcome: 'approved' | 'declined' | 'not-charged' | 'open';
  /** Why it stays open, or the result outcome recorded. */
  detail: string;
}

interface ReconcilerOptions {
  journal: PaymentJournal;
  results: ResultStore;
  /** The gateway of a profile (undefined: the profile is gone from the configuration). */
  gatewayFor: (profile: string) => PaymentGateway | undefined;
  /** "No record at the PSP" means not charged only for attempts older than this. */
  noRecordAfterMs: number;
  logger: Logger;
  /** Counts settled attempts (metrics). */
  onSettled?: (outcome: 'approved' | 'declined' | 'not-charged') => void;
  now?: () => Date;
}

/** Result outcomes that say "we do not know whether the card was charged". */
const UNSURE = new Set<string>(['psp-error', 'unconfirmed', 'error', 'hangup']);

/**
 * Settles every open journal attempt by the PSP's lookup (by idempotency key) and records the
 * real outcome in the call's result, with origin `reconciled`. An attempt the PSP cannot tell
 * about (lookup fails, outcome pending, or "no record" while the attempt is young enough to be
 * still on its way) stays open and is looked at again next round: it is never dropped.
 * The result is written before the attempt is settled, so a crash in between only repeats the
 * (idempotent) work.
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #now: () => Date;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileEntry[]> | undefined;

  constructor(opts: ReconcilerOptions) {
    this.#o = opts;
    this.#now = opts.now ?? (() => new Date());
  }

  /** One round over all open attempts (concurrent calls share the round in progress). */
  runOnce(): Promise<ReconcileEntry[]> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Runs a round every `intervalMs` until stop(). */
  start(intervalMs: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.runOnce().catch((e: unknown) => this.#o.logger.warn({ err: describeError(e) }, 'reconciliation round failed'));
    }, intervalMs);
    this.#timer.unref();
  }

  /** Idempotent. Waits for a round in progress. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  async #round(): Promise<ReconcileEntry[]> {
    const { journal, logger } = this.#o;
    const open = (await journal.openAttempts()).filter((a) => !journal.isInFlight(a.id));
    const out: ReconcileEntry[] = [];
    for (const a of open) {
      const e = await this.#settle(a).catch((err: unknown): ReconcileEntry => ({ ...entryOf(a), outcome: 'open', detail: `failed: ${describeError(err)}` }));
      out.push(e);
      if (e.outcome === 'open') logger.info({ attempt: a.id, call: a.callRef, key: a.idempotencyKey, detail: e.detail }, 'reconciliation: attempt still open');
      else logger.info({ attempt: a.id, call: a.callRef, key: a.idempotencyKey, ref: a.reference, outcome: e.outcome, result: e.detail }, 'reconciliation: attempt settled');
    }
    return out;
  }

  async #settle(a: JournalAttempt): Promise<ReconcileEntry> {
    const { journal } = this.#o;
    const stillOpen = async (detail: string): Promise<ReconcileEntry> => {
      await journal.note(a, { checks: (a.checks ?? 0) + 1, lastCheckAt: this.#now().toISOString() }).catch(() => undefined);
      return { ...entryOf(a), outcome: 'open', detail };
    };
    const gateway = this.#o.gatewayFor(a.profile);
    if (gateway === undefined) return stillOpen(`no gateway for profile ${a.profile}`);
    let found;
    try {
      found = await gateway.lookup({ idempotencyKey: a.idempotencyKey });
    } catch (e) {
      return stillOpen(`lookup failed: ${describeError(e)}`);
    }
    let s: Settlement;
    if (found === undefined) {
      const age = this.#now().getTime() - Date.parse(a.createdAt);
      if (age < this.#o.noRecordAfterMs) return stillOpen('no record at the PSP yet');
      s = { outcome: 'not-charged', origin: 'reconciled' };
    } else if (found.status === 'approved') {
      s = { outcome: 'approved', origin: 'reconciled', transactionId: found.transactionId, authCode: found.authCode };
    } else if (found.status === 'declined') {
      s = { outcome: 'declined', origin: 'reconciled', transactionId: found.transactionId, declineClass: found.declineClass };
    } else {
      return stillOpen(`PSP outcome still unknown (${found.reason})`);
    }
    const recorded = await this.#recordResult(a, s);
    await journal.settle(a, s);
    this.#o.onSettled?.(s.outcome);
    return { ...entryOf(a), outcome: s.outcome, detail: recorded };
  }

  /** Writes the call's result with the real outcome; returns the outcome recorded. */
  async #recordResult(a: JournalAttempt, s: Settlement): Promise<string> {
    const { results } = this.#o;
    const existing = await results.getById(a.callRef);
    let base: PaymentResult & { id: string };
    if (existing !== undefined) {
      const { savedAt: _savedAt, ...rest } = existing;
      base = rest;
    } else {
      base = {
        id: a.callRef,
        outcome: 'error',
        mode: a.mode ?? 'automated',
        currency: a.currency,
        ...(a.conversationId === undefined ? {} : { conversationId: a.conversationId }),
        amount: a.amount,
        reference: a.reference,
        attempts: { charges: a.attempt, declines: 0, invalidEntries: 0 },
        callId: a.callId,
        profile: a.profile,
        handBack: { target: '', status: 'skipped', detail: 'the node stopped during the call' },
      };
    }
    const r: PaymentResult & { id: string } = { ...base, origin: 'reconciled', reconciledAt: this.#now().toISOString() };
    if (s.outcome === 'approved') {
      Object.assign(r, { outcome: 'approved', amount: a.amount, currency: a.currency, brand: a.brand, last4: a.last4, transactionId: s.transactionId, authCode: s.authCode, declineClass: undefined });
    } else if (s.outcome === 'declined') {
      if (existing === undefined || UNSURE.has(String(r.outcome))) Object.assign(r, { outcome: 'declined', declineClass: s.declineClass, brand: a.brand, last4: a.last4 });
    } else if (existing === undefined || String(r.outcome) === 'unconfirmed') {
      // Not charged: an unknown outcome becomes "PSP failed, card not charged".
      r.outcome = existing === undefined ? 'error' : 'psp-error';
    }
    await results.saveResult(r);
    return r.outcome;
  }
}

function entryOf(a: JournalAttempt): Omit<ReconcileEntry, 'outcome' | 'detail'> {
  return { attemptId: a.id, callRef: a.callRef, reference: a.reference, amount: a.amount, currency: a.currency };
}
