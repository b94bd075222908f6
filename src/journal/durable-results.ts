import type { PaymentResult } from '../domain/outcome.js';
import type { ResultStore, StoredResult } from '../store/types.js';
import { ForwardingResultStore } from '../store/forwarding.js';
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
export class DurableResultStore extends ForwardingResultStore {
  readonly #outbox: Outbox<PaymentResult & { id: string }>;
  readonly #log: Logger;

  constructor(inner: ResultStore, spool: Spool, health: StoreHealth, logger: Logger) {
    super(inner);
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

  override async getById(id: string): Promise<StoredResult | undefined> {
    const spooled = this.#outbox.spooled(id);
    if (spooled !== undefined) return { ...spooled, savedAt: 'pending' };
    return this.inner.getById(id);
  }
}
