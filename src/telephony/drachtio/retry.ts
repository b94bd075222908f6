/**
 * Capped exponential backoff with one pending timer, shared by the drachtio and FreeSWITCH
 * links. `schedule` replaces nothing: a second call while a retry is pending is ignored, so a
 * burst of error/close events cannot stack attempts.
 */
export class RetryTimer {
  readonly #initialMs: number;
  readonly #capMs: number;
  #nextMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;

  constructor(initialMs: number, capMs: number) {
    this.#initialMs = Math.max(1, Math.min(initialMs, capMs));
    this.#capMs = Math.max(1, capMs);
    this.#nextMs = this.#initialMs;
  }

  /** Consecutive failures since the last success. */
  get failures(): number {
    return this.#failures;
  }

  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /** Counts a failure and runs `fn` after the current delay; returns that delay. */
  schedule(fn: () => void): number {
    this.#failures += 1;
    const delay = this.#nextMs;
    if (this.#timer !== undefined) return delay;
    this.#nextMs = Math.min(this.#capMs, this.#nextMs * 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      fn();
    }, delay);
    return delay;
  }

  /** A success: the next failure starts again at the initial delay. */
  reset(): void {
    this.#failures = 0;
    this.#nextMs = this.#initialMs;
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Log every failure up to 3, then at powers of two (4, 8, 16 ...): clear at start, quiet later. */
export function shouldLogFailure(failures: number): boolean {
  return failures <= 3 || (failures & (failures - 1)) === 0;
}
