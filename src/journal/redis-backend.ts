import { Redis } from 'ioredis';
import { PayIvrError, describeError } from '../errors.js';
import type { JournalAttempt, JournalBackend } from './types.js';

/**
 * Journal records in Redis, shared by every node (any node or `pay-ivr reconcile` can settle an
 * attempt):
 *   <prefix>journal:<id>     string, the record JSON; open records never expire, settled ones
 *                            expire with the results (ttlSeconds)
 *   <prefix>journal-open     set of the ids of open records
 * The write is a script that keeps the stored record when its version is newer, so a replay of
 * the spool can never move a settled attempt back to open.
 */

const PUT_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and tonumber(old.version or 0) >= tonumber(ARGV[2]) then return 0 end
end
if ARGV[3] == 'open' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[5]))
  redis.call('SREM', KEYS[2], ARGV[4])
end
return 1
`;

export class RedisJournalBackend implements JournalBackend {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #p: string;
  readonly #ttl: number;

  constructor(opts: { url: string; keyPrefix: string; ttlSeconds: number }) {
    this.#p = opts.keyPrefix;
    this.#ttl = opts.ttlSeconds;
    this.#redis = new Redis(opts.url, {
      // Fail fast: a journal write that cannot reach Redis goes to the spool instead.
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      commandTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(times * 200, 2_000),
    });
    // The journal reports outages itself (once per outage); ioredis' own errors are expected then.
    this.#redis.on('error', () => undefined);
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new PayIvrError('ERR_JOURNAL', `redis journal ${what} failed: ${describeError(e)}`, { cause: e });
    }
  }

  async put(a: JournalAttempt): Promise<void> {
    await this.#run('write', async () => {
      await this.#redis.eval(PUT_SCRIPT, 2, `${this.#p}journal:${a.id}`, `${this.#p}journal-open`, JSON.stringify(a), String(a.version), a.state, a.id, String(this.#ttl));
    });
  }

  async get(id: string): Promise<JournalAttempt | undefined> {
    return this.#run('read', async () => parse(await this.#redis.get(`${this.#p}journal:${id}`)));
  }

  async open(): Promise<JournalAttempt[]> {
    return this.#run('read', async () => {
      const ids = await this.#redis.smembers(`${this.#p}journal-open`);
      if (ids.length === 0) return [];
      const values = await this.#redis.mget(ids.map((id) => `${this.#p}journal:${id}`));
      const out: JournalAttempt[] = [];
      for (const v of values) {
        const a = parse(v);
        if (a !== undefined && a.state === 'open') out.push(a);
      }
      return out.sort((x, y) => x.createdAt.localeCompare(y.createdAt));
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.#redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    try {
      if (this.#redis.status === 'ready') await this.#redis.quit();
      else this.#redis.disconnect();
    } catch {
      this.#redis.disconnect();
    }
  }
}

function parse(json: string | null): JournalAttempt | undefined {
  if (json === null) return undefined;
  try {
    const v = JSON.parse(json) as unknown;
    if (v !== null && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string') return v as JournalAttempt;
  } catch {
    // skipped
  }
  return undefined;
}
