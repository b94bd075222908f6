/**
 * "Once per key per window" for log lines an attacker can provoke (refused connections and
 * INVITEs): the first event of a key in each window is reported with how many were suppressed
 * since, the rest are counted only. Memory is bounded: past `maxKeys`, the oldest key goes.
 */
export class OncePerWindow {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, { at: number; suppressed: number }>();

  constructor(windowMs: number, maxKeys = 10_000, now: () => number = Date.now) {
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** The number of suppressed events since the last report when this one is to be reported, else undefined. */
  take(key: string): number | undefined {
    const now = this.#now();
    const s = this.#seen.get(key);
    if (s !== undefined && now - s.at < this.#windowMs) {
      s.suppressed += 1;
      return undefined;
    }
    const suppressed = s?.suppressed ?? 0;
    this.#seen.delete(key);
    if (this.#seen.size >= this.#maxKeys) {
      const oldest = this.#seen.keys().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    this.#seen.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}
