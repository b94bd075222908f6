import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { PaymentResult } from '../domain/outcome.js';
import { PayIvrError, describeError } from '../errors.js';
import { safeCharge, safeLiveState, type LiveCallInfo, type LiveCallState, type ResultStore, type StoredResult } from './types.js';
import { assertNoCardData } from './refuse-card-data.js';

/**
 * Results and live calls in Redis, shared by every pay-ivr node of a trunk.
 *
 * Keys (prefix = store.keyPrefix):
 *   <prefix>result:<id>        string, the result JSON, EX resultTtlSeconds
 *   <prefix>ref:<reference>    sorted set id -> saved ms (newest last), EXPIRE resultTtlSeconds
 *   <prefix>conv:<conv id>     sorted set id -> saved ms, EXPIRE resultTtlSeconds
 *   <prefix>recent             sorted set id -> saved ms, trimmed to maxResults
 *   <prefix>live:<node>        hash call id -> LiveCallInfo JSON, EXPIRE liveTtlSeconds, rewritten
 *                              by this node's heartbeat: when a node dies its hash expires and its
 *                              calls vanish from the list
 *   <prefix>live-nodes         set of node ids that may have live calls (pruned when the hash is gone)
 * Index members whose result has expired are pruned when read. No clock is compared across nodes.
 */
interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  resultTtlSeconds: number;
  maxResults: number;
  /** Node id in the live-call keys (default: hostname + random suffix). */
  nodeId?: string;
  /** Lifetime of this node's live-call hash without a heartbeat (default 30 s; heartbeat every third). */
  liveTtlSeconds?: number;
  logger?: Logger;
  /** Extra ioredis options (tests). */
  redisOptions?: RedisOptions;
}

/** Upper bound of results returned by one index lookup. */
const MAX_LOOKUP = 1000;

function parseResult(json: string | null): StoredResult | undefined {
  if (json === null) return undefined;
  try {
    const v = JSON.parse(json) as unknown;
    if (v !== null && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string') return v as StoredResult;
  } catch {
    // A corrupt entry is skipped, not fatal.
  }
  return undefined;
}

function parseLive(json: string): LiveCallInfo | undefined {
  try {
    const v = JSON.parse(json) as unknown;
    if (v !== null && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string') return v as LiveCallInfo;
  } catch {
    // skipped
  }
  return undefined;
}

export class RedisStore implements ResultStore {
  readonly kind = 'redis';
  readonly nodeId: string;
  readonly #redis: Redis;
  readonly #p: string;
  readonly #ttl: number;
  readonly #max: number;
  readonly #liveTtl: number;
  readonly #log: Logger;
  /** This node's live calls: the heartbeat rewrites them, so a Redis restart heals itself. */
  readonly #mine = new Map<string, LiveCallInfo>();
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #healthy = false;

  constructor(opts: RedisStoreOptions) {
    this.#p = opts.keyPrefix;
    this.#ttl = opts.resultTtlSeconds;
    this.#max = Math.max(1, opts.maxResults);
    this.#liveTtl = Math.max(3, opts.liveTtlSeconds ?? 30);
    this.#log = opts.logger ?? silentLogger;
    this.nodeId = opts.nodeId ?? `${hostname()}-${randomUUID().slice(0, 8)}`;
    this.#redis = new Redis(opts.url, {
      maxRetriesPerRequest: 2,
      connectTimeout: 5_000,
      // A Redis that accepts the connection but never answers must not hold a call up.
      commandTimeout: 2_000,
      // Capped reconnect backoff; the URL (it may hold a password) is never logged.
      retryStrategy: (times: number) => Math.min(times * 200, 5_000),
      ...opts.redisOptions,
    });
    this.#redis.on('ready', () => {
      if (!this.#healthy) this.#log.info({ node: this.nodeId }, 'redis store connected');
      this.#healthy = true;
    });
    this.#redis.on('error', (err: unknown) => {
      // One line per outage, not one per retry.
      if (this.#healthy || this.#redis.status === 'connecting') this.#log.warn({ err: describeError(err) }, 'redis store error');
      this.#healthy = false;
    });
    this.#heartbeat = setInterval(() => void this.#beat(), Math.floor((this.#liveTtl * 1000) / 3));
    this.#heartbeat.unref();
  }

  #key(kind: string, id?: string): string {
    return id === undefined ? `${this.#p}${kind}` : `${this.#p}${kind}:${id}`;
  }

  get #liveKey(): string {
    return this.#key('live', this.nodeId);
  }

  #ensureOpen(): void {
    if (this.#closed) throw new PayIvrError('ERR_STORE', 'store closed');
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof PayIvrError) throw e;
      throw new PayIvrError('ERR_STORE', `redis ${what} failed: ${describeError(e)}`, { cause: e });
    }
  }

  async saveResult(r: PaymentResult & { id: string }): Promise<void> {
    this.#ensureOpen();
    assertNoCardData(r, 'result', r.id, this.#log);
    const savedMs = Date.now();
    const stored: StoredResult = { ...r, savedAt: new Date(savedMs).toISOString() };
    const oldestKept = savedMs - this.#ttl * 1000;
    await this.#run('save', async () => {
      const m = this.#redis.multi();
      m.set(this.#key('result', r.id), JSON.stringify(stored), 'EX', this.#ttl);
      for (const [kind, value] of [['ref', r.reference], ['conv', r.conversationId]] as const) {
        if (value === undefined) continue;
        const k = this.#key(kind, value);
        m.zadd(k, savedMs, r.id);
        m.zremrangebyscore(k, '-inf', oldestKept);
        m.expire(k, this.#ttl);
      }
      const recent = this.#key('recent');
      m.zadd(recent, savedMs, r.id);
      m.zremrangebyrank(recent, 0, -(this.#max + 1));
      const res = await m.exec();
      const failed = res?.find(([err]) => err !== null);
      if (failed !== undefined) throw failed[0];
    });
  }

  /** Results of an index, newest first; members whose result expired are removed from it. */
  async #fromIndex(indexKey: string, limit: number): Promise<StoredResult[]> {
    if (limit <= 0) return [];
    return this.#run('lookup', async () => {
      const ids = await this.#redis.zrevrange(indexKey, 0, limit - 1);
      if (ids.length === 0) return [];
      const values = await this.#redis.mget(ids.map((id) => this.#key('result', id)));
      const out: StoredResult[] = [];
      const gone: string[] = [];
      values.forEach((v, i) => {
        const r = parseResult(v);
        if (r !== undefined) out.push(r);
        else gone.push(ids[i] as string);
      });
      if (gone.length > 0) await this.#redis.zrem(indexKey, ...gone);
      return out;
    });
  }

  async getByReference(reference: string): Promise<StoredResult[]> {
    this.#ensureOpen();
    return this.#fromIndex(this.#key('ref', reference), MAX_LOOKUP);
  }

  async getByConversationId(conversationId: string): Promise<StoredResult[]> {
    this.#ensureOpen();
    return this.#fromIndex(this.#key('conv', conversationId), MAX_LOOKUP);
  }

  async getById(id: string): Promise<StoredResult | undefined> {
    this.#ensureOpen();
    return this.#run('get', async () => parseResult(await this.#redis.get(this.#key('result', id))));
  }

  async recent(limit: number): Promise<StoredResult[]> {
    this.#ensureOpen();
    return this.#fromIndex(this.#key('recent'), Math.min(limit, this.#max));
  }

  /** Rewrites this node's live-call hash and renews its expiry. */
  async #beat(): Promise<void> {
    if (this.#closed || this.#mine.size === 0) return;
    try {
      const m = this.#redis.multi();
      const fields: string[] = [];
      for (const [id, info] of this.#mine) fields.push(id, JSON.stringify(info));
      m.hset(this.#liveKey, ...fields);
      m.expire(this.#liveKey, this.#liveTtl);
      m.sadd(this.#key('live-nodes'), this.nodeId);
      await m.exec();
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'live-call heartbeat failed');
    }
  }

  async #writeLive(info: LiveCallInfo): Promise<void> {
    await this.#run('live call', async () => {
      await this.#redis
        .multi()
        .hset(this.#liveKey, info.id, JSON.stringify(info))
        .expire(this.#liveKey, this.#liveTtl)
        .sadd(this.#key('live-nodes'), this.nodeId)
        .exec();
    });
  }

  // Live-call bookkeeping is a no-op after close: calls still ending during shutdown must not throw.
  async liveCallStarted(info: LiveCallInfo): Promise<void> {
    if (this.#closed) return;
    assertNoCardData(info, 'live call', info.id, this.#log);
    const entry: LiveCallInfo = { ...info, state: safeLiveState(info.state), node: this.nodeId };
    this.#mine.set(info.id, entry);
    await this.#writeLive(entry);
  }

  async liveCallState(id: string, state: LiveCallState, extra?: Pick<LiveCallInfo, 'charge'>): Promise<void> {
    if (this.#closed) return;
    const entry = this.#mine.get(id);
    if (entry === undefined) return;
    entry.state = safeLiveState(state);
    entry.charge = safeCharge(extra?.charge);
    await this.#writeLive(entry);
  }

  async liveCallEnded(id: string): Promise<void> {
    if (this.#closed) return;
    this.#mine.delete(id);
    await this.#run('live call', async () => {
      await this.#redis.hdel(this.#liveKey, id);
    });
  }

  async liveCalls(): Promise<LiveCallInfo[]> {
    this.#ensureOpen();
    return this.#run('live calls', async () => {
      const nodesKey = this.#key('live-nodes');
      const nodes = await this.#redis.smembers(nodesKey);
      if (nodes.length === 0) return [];
      const pipe = this.#redis.pipeline();
      for (const n of nodes) pipe.hgetall(this.#key('live', n));
      const replies = (await pipe.exec()) ?? [];
      const out: LiveCallInfo[] = [];
      const dead: string[] = [];
      replies.forEach(([err, value], i) => {
        if (err !== null) return;
        const hash = value as Record<string, string>;
        const entries = Object.values(hash);
        if (entries.length === 0) dead.push(nodes[i] as string);
        for (const json of entries) {
          const info = parseLive(json);
          if (info !== undefined) out.push(info);
        }
      });
      // A node whose hash expired (crashed) or emptied is dropped; a live node re-adds itself on
      // its next call or heartbeat.
      if (dead.length > 0) await this.#redis.srem(nodesKey, ...dead);
      return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    });
  }

  async ping(): Promise<boolean> {
    if (this.#closed) return false;
    try {
      return (await this.#redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#mine.clear();
    try {
      if (this.#redis.status === 'ready') {
        await this.#redis.del(this.#liveKey);
        await this.#redis.quit();
      } else {
        this.#redis.disconnect();
      }
    } catch {
      this.#redis.disconnect();
    }
    this.#redis.removeAllListeners();
    // ioredis may still report a late socket error: an 'error' event without listener would crash.
    this.#redis.on('error', () => undefined);
  }
}
