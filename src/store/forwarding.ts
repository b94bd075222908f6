import type { PaymentResult } from '../domain/outcome.js';
import type { LiveCallInfo, LiveCallState, ResultStore, StoredResult } from './types.js';

/**
 * A result store in front of another one: everything goes to `inner` unless a subclass says
 * otherwise (the spool behind Redis, the Genesys write-back queue in front of saving).
 */
export abstract class ForwardingResultStore implements ResultStore {
  readonly kind: ResultStore['kind'];
  protected readonly inner: ResultStore;

  constructor(inner: ResultStore) {
    this.kind = inner.kind;
    this.inner = inner;
  }

  abstract saveResult(r: PaymentResult & { id: string }): Promise<void>;

  getById(id: string): Promise<StoredResult | undefined> {
    return this.inner.getById(id);
  }

  getByReference(reference: string): Promise<StoredResult[]> {
    return this.inner.getByReference(reference);
  }

  getByConversationId(conversationId: string): Promise<StoredResult[]> {
    return this.inner.getByConversationId(conversationId);
  }

  recent(limit: number): Promise<StoredResult[]> {
    return this.inner.recent(limit);
  }

  liveCallStarted(info: LiveCallInfo): Promise<void> {
    return this.inner.liveCallStarted(info);
  }

  liveCallState(id: string, state: LiveCallState, extra?: Pick<LiveCallInfo, 'charge'>): Promise<void> {
    return this.inner.liveCallState(id, state, extra);
  }

  liveCallEnded(id: string): Promise<void> {
    return this.inner.liveCallEnded(id);
  }

  liveCalls(): Promise<LiveCallInfo[]> {
    return this.inner.liveCalls();
  }

  ping(): Promise<boolean> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
