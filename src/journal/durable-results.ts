import type { PaymentResult } from '../domain/outcome.js';
import type { LiveCallInfo, LiveCallState, ResultStore, StoredResult } from '../store/types.js';
import { assertNoCardData } from '../store/refuse-card-data.js';
import type { Logger } from '../log.js';
import type { Spool } from './spool.js';
import { Outbox, type StoreHealth } from './outbox.js';

const PENDING_RESULT_PREFIX = 'or:';

/**
 * The Redis result store with the spool behind it: a result that cannot reach Redis is appended
 * to the spool and replayed when Redis answers again, so no result is dropped by an outage (see
 * Outbox). Reads go to Redis, except a result still waiting in the spool, which is served from
 * there. Live-call bookkeeping is passed through (it is informational and rebuilt by heartbeat).
 */
export class DurableResultStore implements ResultStore {
  readonly kind: ResultStore['kind'];
  readonly #inner: ResultStore;
  readonly #outbox: Outbox<PaymentResult & { id: string }>;
  readonly #log: Logger;

  constructor(inner: ResultStore, spool: Spool, health: StoreHealth, logger: Logger) {
    this.kind = inner.kind;
    this.#inner = inner;
    this.#log = logger;
    this.#outbox = new Outbox({ spool, prefix: PENDING_RESULT_PREFIX, push: (r) => inner.saveResult(r), health, logger });
  }

  /** Results waiting in the spool. */
  get pending(): number {
    return this.#outbox.pending;
  }

  replay(): Promise<number> {
    return this.#outbox.drain();
  }

  async saveResult(r: PaymentResult & { id: string }): Promise<void> {
    // Checked here too: a refused record must not go to the spool either.
    assertNoCardData(r, 'result', r.id, this.#log);
    await this.#outbox.write(r.id, r);
  }

  async getById(id: string): Promise<StoredResult | undefined> {
    const spooled = this.#outbox.spooled(id);
    if (spooled !== undefined) return { ...spooled, savedAt: 'pending' };
    return this.#inner.getById(id);
  }

  getByReference(reference: string): Promise<StoredResult[]> {
    return this.#inner.getByReference(reference);
  }

  getByConversationId(conversationId: string): Promise<StoredResult[]> {
    return this.#inner.getByConversationId(conversationId);
  }

  recent(limit: number): Promise<StoredResult[]> {
    return this.#inner.recent(limit);
  }

  liveCallStarted(info: LiveCallInfo): Promise<void> {
    return this.#inner.liveCallStarted(info);
  }

  liveCallState(id: string, state: LiveCallState, extra?: Pick<LiveCallInfo, 'charge'>): Promise<void> {
    return this.#inner.liveCallState(id, state, extra);
  }

  liveCallEnded(id: string): Promise<void> {
    return this.#inner.liveCallEnded(id);
  }

  liveCalls(): Promise<LiveCallInfo[]> {
    return this.#inner.liveCalls();
  }

  ping(): Promise<boolean> {
    return this.#inner.ping();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
