import type { PaymentResult } from '../../domain/outcome.js';
import type { ResultStore } from '../../store/types.js';
import { ForwardingResultStore } from '../../store/forwarding.js';
import type { WriteBackQueue } from './write-back.js';

/**
 * The result store with the participant-data write-back in front: every saved result that
 * carries a conversation id (the call's `charged` and `ended` records, agent-assisted captures,
 * results written at start-up for calls a crash left, and every change made by reconciliation)
 * is queued for Genesys. saveResult resolves only once the write is in the durable queue and the
 * result is saved, so a result reported saved always has its write queued (kill -9 after it
 * loses neither). One place for every writer of results: they all save through this store.
 */
export class WriteBackResultStore extends ForwardingResultStore {
  readonly #queue: WriteBackQueue;

  constructor(inner: ResultStore, queue: WriteBackQueue) {
    super(inner);
    this.#queue = queue;
  }

  async saveResult(r: PaymentResult & { id: string }): Promise<void> {
    // Side by side: the queue never throws (a write it cannot take is logged and counted).
    const [, saved] = await Promise.allSettled([this.#queue.enqueueResult(r), this.inner.saveResult(r)]);
    if (saved.status === 'rejected') throw saved.reason;
  }
}
