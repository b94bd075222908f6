import type { CaptureHost, EdgeCall } from './types.js';

/**
 * The edge's calls by session id (what the capture API looks up) and by rtpengine call-id (where
 * rtpengine's key events go). Ended calls are remembered, bounded in time and count, so a late
 * request about one can be told "ended" rather than "unknown".
 */
export class EdgeCallRegistry<C extends EdgeCall = EdgeCall> implements CaptureHost {
  readonly #live = new Map<string, C>();
  readonly #byAnchor = new Map<string, C>();
  /** Session id -> when it ended; insertion order is end order. */
  readonly #ended = new Map<string, number>();
  readonly #keepMs: number;
  readonly #keepCount: number;
  readonly #now: () => number;

  constructor(opts: { keepEndedMs: number; keepEndedCount: number; now?: () => number }) {
    this.#keepMs = opts.keepEndedMs;
    this.#keepCount = opts.keepEndedCount;
    this.#now = opts.now ?? Date.now;
  }

  /** Registers a call; it moves to the ended list on its 'ended' event. */
  add(call: C): void {
    this.#live.set(call.sessionId, call);
    this.#byAnchor.set(call.anchor.callId, call);
    call.once('ended', () => this.#onEnded(call));
  }

  find(sessionId: string): EdgeCall | 'ended' | undefined {
    const live = this.#live.get(sessionId);
    if (live !== undefined) return live;
    this.#prune();
    return this.#ended.has(sessionId) ? 'ended' : undefined;
  }

  byAnchorCallId(callId: string): C | undefined {
    return this.#byAnchor.get(callId);
  }

  get size(): number {
    return this.#live.size;
  }

  get endedCount(): number {
    this.#prune();
    return this.#ended.size;
  }

  live(): C[] {
    return [...this.#live.values()];
  }

  #onEnded(call: C): void {
    this.#live.delete(call.sessionId);
    if (this.#byAnchor.get(call.anchor.callId) === call) this.#byAnchor.delete(call.anchor.callId);
    this.#ended.set(call.sessionId, this.#now());
    this.#prune();
  }

  #prune(): void {
    const oldest = this.#now() - this.#keepMs;
    for (const [id, at] of this.#ended) {
      if (this.#ended.size <= this.#keepCount && at > oldest) break;
      this.#ended.delete(id);
    }
  }
}
