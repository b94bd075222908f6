export type BreakerState = 'closed' | 'open' | 'half-open';

interface BreakerOptions {
  /** Consecutive transport failures that open the circuit. */
  failures: number;
  /** How long the circuit stays open before one probe may go through. */
  resetMs: number;
  now?: () => number;
  onChange?: (state: BreakerState) => void;
}

/** What the breaker lets a caller do now. */
export type BreakerGate = 'go' | 'probe' | 'reject';

/**
 * A circuit breaker per PSP. Closed: everything goes. After `failures` consecutive transport
 * failures it opens: callers are refused at once (they hand the call back instead of waiting on a
 * dead PSP). After `resetMs` it is half-open: one probe goes through; its success closes the
 * circuit, its failure opens it for another `resetMs`.
 */
export class CircuitBreaker {
  readonly #opts: BreakerOptions;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #consecutive = 0;
  #openedAt = 0;
  #probing = false;

  constructor(opts: BreakerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#opts.resetMs) this.#set('half-open');
    return this.#state;
  }

  acquire(): BreakerGate {
    const s = this.state;
    if (s === 'closed') return 'go';
    if (s === 'open' || this.#probing) return 'reject';
    this.#probing = true;
    return 'probe';
  }

  /** The PSP answered (approved, declined, or even a 4xx): it is up. */
  success(): void {
    this.#consecutive = 0;
    this.#probing = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  /** Timeout, network error, 5xx or 429. */
  failure(): void {
    this.#consecutive += 1;
    const wasProbe = this.#probing;
    this.#probing = false;
    if (wasProbe || this.#state === 'half-open' || this.#consecutive >= this.#opts.failures) {
      this.#openedAt = this.#now();
      if (this.#state !== 'open') this.#set('open');
    }
  }

  /** A send ended without telling us anything about the PSP (the caller gave up). */
  release(gate: BreakerGate): void {
    if (gate === 'probe') this.#probing = false;
  }

  #set(s: BreakerState): void {
    this.#state = s;
    this.#opts.onChange?.(s);
  }
}
