import type { Logger } from '../log.js';
import { PayIvrError, describeError } from '../errors.js';
import { assertNoCardData } from '../store/refuse-card-data.js';
import type { Spool } from './spool.js';
import { Outbox, type StoreHealth } from './outbox.js';
import type { AttemptOutcome, JournalAttempt, JournalBackend, OrphanDialog, SettleOrigin } from './types.js';

/** Spool key prefixes: attempts waiting for Redis, and the dialogs of calls in progress. */
const PENDING_ATTEMPT_PREFIX = 'oj:';
const DIALOG_PREFIX = 'd:';

interface PaymentJournalOptions {
  backend: JournalBackend;
  spool: Spool;
  /** Shared outage tracker (Redis only). */
  health?: StoreHealth | undefined;
  node: string;
  logger: Logger;
  now?: () => Date;
}

export type NewAttempt = Omit<JournalAttempt, 'node' | 'createdAt' | 'state' | 'version'>;

export interface Settlement {
  outcome: AttemptOutcome;
  origin: SettleOrigin;
  transactionId?: string | undefined;
  authCode?: string | undefined;
  declineClass?: JournalAttempt['declineClass'];
}

/**
 * The payment journal of a node (see docs/payment-journal.md): attempt records written before
 * the first send and settled when the outcome is known, in the backend (local spool or Redis);
 * with Redis, through the spool while Redis is unreachable. It also keeps the dialog state of
 * the calls in progress in the spool, so a restarted node can end them.
 */
export class PaymentJournal {
  readonly node: string;
  readonly backend: JournalBackend;
  readonly #spool: Spool;
  readonly #outbox: Outbox<JournalAttempt> | undefined;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** Attempts this process is sending now: reconciliation leaves them to the call. */
  readonly #inFlight = new Set<string>();

  constructor(opts: PaymentJournalOptions) {
    this.node = opts.node;
    this.backend = opts.backend;
    this.#spool = opts.spool;
    this.#log = opts.logger;
    this.#now = opts.now ?? (() => new Date());
    if (opts.backend.kind === 'redis') {
      if (opts.health === undefined) throw new PayIvrError('ERR_INTERNAL', 'a Redis journal needs a health tracker');
      this.#outbox = new Outbox<JournalAttempt>({ spool: opts.spool, prefix: PENDING_ATTEMPT_PREFIX, push: (a) => opts.backend.put(a), health: opts.health, logger: opts.logger });
    }
  }

  get spool(): Spool {
    return this.#spool;
  }

  /** Journal records waiting in the spool for Redis. */
  get pending(): number {
    return this.#outbox?.pending ?? 0;
  }

  isInFlight(id: string): boolean {
    return this.#inFlight.has(id);
  }

  /**
   * Records an attempt before its first send. Throws (ERR_JOURNAL / ERR_JOURNAL_FULL) when it
   * cannot be recorded anywhere: the charge must then not be sent.
   */
  async begin(a: NewAttempt): Promise<JournalAttempt> {
    const rec: JournalAttempt = { ...a, node: this.node, createdAt: this.#now().toISOString(), state: 'open', version: 1 };
    assertNoCardData(rec, 'result', rec.id, this.#log);
    await this.#write(rec);
    this.#inFlight.add(rec.id);
    return rec;
  }

  /** The call is done with the attempt (settled or not): reconciliation may now take it. */
  release(id: string): void {
    this.#inFlight.delete(id);
  }

  /** Final outcome of an attempt. */
  async settle(a: JournalAttempt, s: Settlement): Promise<JournalAttempt> {
    const rec: JournalAttempt = {
      ...a,
      state: 'settled',
      outcome: s.outcome,
      origin: s.origin,
      transactionId: s.transactionId ?? a.transactionId,
      authCode: s.authCode ?? a.authCode,
      declineClass: s.declineClass ?? a.declineClass,
      settledAt: this.#now().toISOString(),
      version: a.version + 1,
    };
    await this.#write(rec);
    return rec;
  }

  /** The attempt stays open (outcome unknown): note why, or one more lookup that could not tell. */
  async note(a: JournalAttempt, fields: Pick<JournalAttempt, 'unknownReason' | 'checks' | 'lastCheckAt'>): Promise<JournalAttempt> {
    const rec: JournalAttempt = { ...a, ...fields, version: a.version + 1 };
    await this.#write(rec);
    return rec;
  }

  async #write(rec: JournalAttempt): Promise<void> {
    if (this.#outbox === undefined) {
      await this.backend.put(rec);
      return;
    }
    await this.#outbox.write(rec.id, rec);
  }

  /** Open attempts of every node (Redis) or of this node (local), spooled ones included. */
  async openAttempts(): Promise<JournalAttempt[]> {
    const byId = new Map<string, JournalAttempt>();
    for (const a of await this.backend.open()) byId.set(a.id, a);
    for (const [, v] of this.#spool.entries(PENDING_ATTEMPT_PREFIX)) {
      const a = v as JournalAttempt;
      const cur = byId.get(a.id);
      if (a.state === 'open' && (cur === undefined || cur.version < a.version)) byId.set(a.id, a);
      else if (a.state !== 'open' && cur !== undefined && cur.version < a.version) byId.delete(a.id);
    }
    return [...byId.values()].sort((x, y) => x.createdAt.localeCompare(y.createdAt));
  }

  /** Pushes spooled journal records to Redis. */
  async replay(): Promise<number> {
    return this.#outbox?.drain() ?? 0;
  }

  // --- dialogs of calls in progress (always local: only this node can end them) ---

  /** Keeps a call's dialog; resolves once on disk (the call never waits for it). */
  saveDialog(d: OrphanDialog): Promise<void> {
    // Losing it only costs the caller the BYE after a crash; the call goes on.
    return this.#spool.set(DIALOG_PREFIX + d.callRef, d).catch((e: unknown) => this.#log.warn({ err: describeError(e), call: d.callRef }, 'dialog state not kept'));
  }

  dropDialog(callRef: string): Promise<void> {
    return this.#spool.delete(DIALOG_PREFIX + callRef).catch((e: unknown) => this.#log.warn({ err: describeError(e), call: callRef }, 'dialog state not removed'));
  }

  /** Dialogs kept by an earlier run of this node (calls it had in progress). */
  dialogs(): OrphanDialog[] {
    return this.#spool.entries(DIALOG_PREFIX).map(([, v]) => v as OrphanDialog);
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}
