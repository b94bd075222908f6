import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { PaymentResult } from '../domain/outcome.js';
import { PayIvrError } from '../errors.js';
import { safeCharge, safeLiveState, type LiveCallInfo, type LiveCallState, type ResultStore, type StoredResult } from './types.js';
import { assertNoCardData } from './refuse-card-data.js';

interface MemoryStoreOptions {
  /** Results kept; the oldest saved is evicted first. */
  maxResults?: number;
  /** Results older than this are not returned (checked on read). */
  resultTtlSeconds?: number;
  logger?: Logger;
  /** Clock (ms), for tests. */
  now?: () => number;
}

/** Deep copy so callers can neither change stored records nor see later changes. */
function copy<T>(v: T): T {
  return structuredClone(v);
}

/**
 * Results and live calls of one process. Bounded: a Map in insertion order is the eviction
 * queue, and the reference / conversation indexes are cleaned on eviction.
 */
export class MemoryStore implements ResultStore {
  readonly kind = 'memory';
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #results = new Map<string, { r: StoredResult; savedMs: number }>();
  readonly #byRef = new Map<string, Set<string>>();
  readonly #byConv = new Map<string, Set<string>>();
  readonly #live = new Map<string, LiveCallInfo>();
  #closed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    this.#max = Math.max(1, opts.maxResults ?? 10_000);
    this.#ttlMs = (opts.resultTtlSeconds ?? 30 * 24 * 3600) * 1000;
    this.#log = opts.logger ?? silentLogger;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#results.size;
  }

  #ensureOpen(): void {
    if (this.#closed) throw new PayIvrError('ERR_STORE', 'store closed');
  }

  async saveResult(r: PaymentResult & { id: string }): Promise<void> {
    this.#ensureOpen();
    assertNoCardData(r, 'result', r.id, this.#log);
    const savedMs = this.#now();
    const stored: StoredResult = { ...copy(r), savedAt: new Date(savedMs).toISOString() };
    if (this.#results.has(r.id)) this.#remove(r.id);
    this.#results.set(r.id, { r: stored, savedMs });
    if (stored.reference !== undefined) addIndex(this.#byRef, stored.reference, r.id);
    if (stored.conversationId !== undefined) addIndex(this.#byConv, stored.conversationId, r.id);
    while (this.#results.size > this.#max) {
      const oldest = this.#results.keys().next();
      if (oldest.done === true) break;
      this.#remove(oldest.value);
    }
  }

  #remove(id: string): void {
    const e = this.#results.get(id);
    if (e === undefined) return;
    this.#results.delete(id);
    if (e.r.reference !== undefined) removeIndex(this.#byRef, e.r.reference, id);
    if (e.r.conversationId !== undefined) removeIndex(this.#byConv, e.r.conversationId, id);
  }

  #read(id: string): StoredResult | undefined {
    const e = this.#results.get(id);
    if (e === undefined) return undefined;
    if (this.#now() - e.savedMs > this.#ttlMs) {
      this.#remove(id);
      return undefined;
    }
    return copy(e.r);
  }

  #lookup(index: Map<string, Set<string>>, key: string): StoredResult[] {
    const ids = index.get(key);
    if (ids === undefined) return [];
    const out: StoredResult[] = [];
    for (const id of [...ids].reverse()) {
      const r = this.#read(id);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  async getByReference(reference: string): Promise<StoredResult[]> {
    this.#ensureOpen();
    return this.#lookup(this.#byRef, reference);
  }

  async getByConversationId(conversationId: string): Promise<StoredResult[]> {
    this.#ensureOpen();
    return this.#lookup(this.#byConv, conversationId);
  }

  async getById(id: string): Promise<StoredResult | undefined> {
    this.#ensureOpen();
    return this.#read(id);
  }

  async recent(limit: number): Promise<StoredResult[]> {
    this.#ensureOpen();
    const out: StoredResult[] = [];
    if (limit <= 0) return out;
    for (const id of [...this.#results.keys()].reverse()) {
      const r = this.#read(id);
      if (r !== undefined) out.push(r);
      if (out.length >= limit) break;
    }
    return out;
  }

  // Live-call bookkeeping is a no-op after close: calls still ending during shutdown must not throw.
  async liveCallStarted(info: LiveCallInfo): Promise<void> {
    if (this.#closed) return;
    assertNoCardData(info, 'live call', info.id, this.#log);
    this.#live.set(info.id, { ...copy(info), state: safeLiveState(info.state), node: info.node ?? 'local' });
  }

  async liveCallState(id: string, state: LiveCallState, extra?: Pick<LiveCallInfo, 'charge'>): Promise<void> {
    if (this.#closed) return;
    const info = this.#live.get(id);
    if (info === undefined) return;
    info.state = safeLiveState(state);
    info.charge = safeCharge(extra?.charge);
  }

  async liveCallEnded(id: string): Promise<void> {
    if (this.#closed) return;
    this.#live.delete(id);
  }

  async liveCalls(): Promise<LiveCallInfo[]> {
    this.#ensureOpen();
    return [...this.#live.values()].map(copy).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  async ping(): Promise<boolean> {
    return !this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#results.clear();
    this.#byRef.clear();
    this.#byConv.clear();
    this.#live.clear();
  }
}

function addIndex(index: Map<string, Set<string>>, key: string, id: string): void {
  let s = index.get(key);
  if (s === undefined) index.set(key, (s = new Set()));
  s.add(id);
}

function removeIndex(index: Map<string, Set<string>>, key: string, id: string): void {
  const s = index.get(key);
  if (s === undefined) return;
  s.delete(id);
  if (s.size === 0) index.delete(key);
}
