import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { FleetRateCounter } from '../telephony/admission.js';
import { describeError } from '../errors.js';

/**
 * The per-source INVITE rate of the whole fleet, in Redis: every node adds its admissions to a
 * hash per wall-clock second (`<prefix>rate:<second>`, field = source address, kept 10 s) and
 * reads the current second's totals back every `refreshMs`. Admission stays synchronous and
 * never waits for Redis: it compares against the last totals read (so the fleet-wide limit lags
 * by at most refreshMs), and each node's own token bucket still applies when Redis is away.
 */
export class RedisRateCounter implements FleetRateCounter {
  readonly #redis: Redis;
  readonly #p: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  /** Fleet totals of the second `#second`, as last read. */
  #second = -1;
  #totals = new Map<string, number>();
  /** Our own admissions of the current second not yet reflected in #totals. */
  #pending = new Map<string, number>();
  #failing = false;
  readonly #writes = new Set<Promise<unknown>>();

  constructor(opts: { url: string; keyPrefix: string; logger: Logger; refreshMs?: number; now?: () => number }) {
    this.#p = opts.keyPrefix;
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#redis = new Redis(opts.url, { maxRetriesPerRequest: 1, commandTimeout: 1_000, retryStrategy: (t: number) => Math.min(t * 200, 5_000), lazyConnect: false });
    this.#redis.on('error', () => undefined);
    this.#timer = setInterval(() => void this.refresh(), opts.refreshMs ?? 200);
    this.#timer.unref();
  }

  #key(second: number): string {
    return `${this.#p}rate:${second}`;
  }

  /** INVITEs admitted from `source` by the whole fleet in the current second (as far as known). */
  count(source: string): number {
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#second) return this.#pending.get(source) ?? 0;
    return (this.#totals.get(source) ?? 0) + (this.#pending.get(source) ?? 0);
  }

  /** Records one admission (fire and forget: a Redis fault never delays a call). */
  add(source: string): void {
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#totals = new Map();
      this.#pending = new Map();
    }
    this.#pending.set(source, (this.#pending.get(source) ?? 0) + 1);
    const key = this.#key(second);
    const write = this.#redis
      .multi()
      .hincrby(key, source, 1)
      .expire(key, 10)
      .exec()
      .then(() => {
        // Counted in Redis now: the next refresh brings it back in the totals.
        if (this.#second === second) this.#pending.set(source, Math.max(0, (this.#pending.get(source) ?? 1) - 1));
      })
      .catch((e: unknown) => this.#fault(e))
      .finally(() => this.#writes.delete(write));
    this.#writes.add(write);
  }

  /** Resolves when this node's admissions so far are counted in Redis (or failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }

  /** Reads the current second's fleet totals (also run by the timer). */
  async refresh(): Promise<void> {
    const second = Math.floor(this.#now() / 1000);
    try {
      const all = await this.#redis.hgetall(this.#key(second));
      if (second < this.#second) return;
      if (second !== this.#second) {
        this.#second = second;
        this.#pending = new Map();
      }
      this.#totals = new Map(Object.entries(all).map(([k, v]) => [k, Number(v)]));
      if (this.#failing) this.#log.info('fleet rate counter: Redis back');
      this.#failing = false;
    } catch (e) {
      this.#fault(e);
    }
  }

  #fault(e: unknown): void {
    if (!this.#failing) this.#log.warn({ err: describeError(e) }, 'fleet rate counter: Redis unavailable, each node limits on its own');
    this.#failing = true;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
