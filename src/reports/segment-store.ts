import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { PayIvrError, describeError } from '../errors.js';
import { assertValidSegment, parseSegment, type SegmentRecord } from './segment.js';

/**
 * Where segment records live, filed by start time. Two adapters beside the result store's:
 * memory (one process, bounded) and Redis (a sorted set by start time + one key per record, both
 * expiring after the retention). Every write is validated first (segment.ts).
 */
export interface SegmentStore {
  readonly kind: 'memory' | 'redis';
  save(rec: SegmentRecord): Promise<void>;
  /** Segments that started in [fromMs, toMs), oldest first, at most `limit`. */
  range(fromMs: number, toMs: number, limit: number): Promise<SegmentRecord[]>;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Most segments one report reads (the API refuses wider ranges rather than truncating silently). */
export const MAX_RANGE_SEGMENTS = 200_000;

interface MemorySegmentStoreOptions {
  maxSegments: number;
  retentionSeconds: number;
  now?: () => number;
}

export class MemorySegmentStore implements SegmentStore {
  readonly kind = 'memory';
  readonly #max: number;
  readonly #retentionMs: number;
  readonly #now: () => number;
  /** Sorted by start time (calls end out of order: insertion keeps the order). */
  #items: { t: number; rec: SegmentRecord }[] = [];
  #closed = false;

  constructor(opts: MemorySegmentStoreOptions) {
    this.#max = Math.max(1, opts.maxSegments);
    this.#retentionMs = opts.retentionSeconds * 1000;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#items.length;
  }

  async save(rec: SegmentRecord): Promise<void> {
    if (this.#closed) throw new PayIvrError('ERR_STORE', 'segment store closed');
    assertValidSegment(rec);
    const t = Date.parse(rec.startedAt);
    this.#items = this.#items.filter((e) => e.rec.id !== rec.id);
    let i = this.#items.length;
    while (i > 0 && (this.#items[i - 1] as { t: number }).t > t) i--;
    this.#items.splice(i, 0, { t, rec: structuredClone(rec) });
    this.#prune();
  }

  #prune(): void {
    const oldest = this.#now() - this.#retentionMs;
    let drop = 0;
    while (drop < this.#items.length && (this.#items[drop] as { t: number }).t < oldest) drop++;
    drop = Math.max(drop, this.#items.length - this.#max);
    if (drop > 0) this.#items.splice(0, drop);
  }

  async range(fromMs: number, toMs: number, limit: number): Promise<SegmentRecord[]> {
    if (this.#closed) throw new PayIvrError('ERR_STORE', 'segment store closed');
    this.#prune();
    const out: SegmentRecord[] = [];
    for (const e of this.#items) {
      if (e.t >= toMs || out.length >= limit) break;
      if (e.t >= fromMs) out.push(structuredClone(e.rec));
    }
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#items = [];
  }
}

interface RedisSegmentStoreOptions {
  url: string;
  keyPrefix: string;
  retentionSeconds: number;
  logger?: Logger;
}

/** Records read per MGET. */
const CHUNK = 500;

export class RedisSegmentStore implements SegmentStore {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #p: string;
  readonly #retention: number;
  readonly #log: Logger;
  #closed = false;

  constructor(opts: RedisSegmentStoreOptions) {
    this.#p = opts.keyPrefix;
    this.#retention = opts.retentionSeconds;
    this.#log = opts.logger ?? silentLogger;
    this.#redis = new Redis(opts.url, {
      maxRetriesPerRequest: 2,
      connectTimeout: 5_000,
      commandTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(times * 200, 5_000),
    });
    // The URL may hold a password: only the error text is logged, and once per outage.
    let healthy = true;
    this.#redis.on('ready', () => (healthy = true));
    this.#redis.on('error', (err: unknown) => {
      if (healthy) this.#log.warn({ err: describeError(err) }, 'redis segment store error');
      healthy = false;
    });
  }

  get #index(): string {
    return `${this.#p}segments`;
  }

  #key(id: string): string {
    return `${this.#p}segment:${id}`;
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new PayIvrError('ERR_STORE', 'segment store closed');
    try {
      return await fn();
    } catch (e) {
      if (e instanceof PayIvrError) throw e;
      throw new PayIvrError('ERR_STORE', `redis segment ${what} failed: ${describeError(e)}`, { cause: e });
    }
  }

  async save(rec: SegmentRecord): Promise<void> {
    assertValidSegment(rec);
    const t = Date.parse(rec.startedAt);
    await this.#run('save', async () => {
      const res = await this.#redis
        .multi()
        .set(this.#key(rec.id), JSON.stringify(rec), 'EX', this.#retention)
        .zadd(this.#index, t, rec.id)
        .zremrangebyscore(this.#index, '-inf', Date.now() - this.#retention * 1000)
        .exec();
      const failed = res?.find(([err]) => err !== null);
      if (failed !== undefined) throw failed[0];
    });
  }

  async range(fromMs: number, toMs: number, limit: number): Promise<SegmentRecord[]> {
    return this.#run('range', async () => {
      const ids = await this.#redis.zrangebyscore(this.#index, fromMs, `(${toMs}`, 'LIMIT', 0, limit);
      const out: SegmentRecord[] = [];
      const gone: string[] = [];
      for (let i = 0; i < ids.length; i += CHUNK) {
        const part = ids.slice(i, i + CHUNK);
        const values = await this.#redis.mget(part.map((id) => this.#key(id)));
        values.forEach((v, j) => {
          const rec = parseSegment(v);
          if (rec !== undefined) out.push(rec);
          else gone.push(part[j] as string);
        });
      }
      if (gone.length > 0) await this.#redis.zrem(this.#index, ...gone);
      return out;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#redis.status === 'ready') await this.#redis.quit();
      else this.#redis.disconnect();
    } catch {
      this.#redis.disconnect();
    }
    this.#redis.removeAllListeners();
    this.#redis.on('error', () => undefined);
  }
}
