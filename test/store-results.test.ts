import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { configSchema } from '../src/config/schema.js';
import type { PaymentResult } from '../src/domain/outcome.js';
import { isPayIvrError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { MemoryStore } from '../src/store/memory.js';
import { RedisStore } from '../src/store/redis.js';
import { createStore } from '../src/store/index.js';
import type { LiveCallInfo, ResultStore } from '../src/store/types.js';
import { findCardData } from '../src/domain/card-data-guard.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { capturedLogger, sampleResult } from './support/result-fixtures.js';

const REDIS_PORT = 16379;
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;
const TEST_PAN = '4242424242424242';

function live(id: string, extra: Partial<LiveCallInfo> = {}): LiveCallInfo {
  return { id, callId: `${id}@test`, startedAt: new Date().toISOString(), profile: 'default', state: 'amount', ...extra };
}

/** The behaviour both adapters share. */
function contract(name: string, make: (logger: Logger) => ResultStore): void {
  describe(`${name}: ResultStore contract`, () => {
    it('saves and finds results by id, reference and conversation id, newest first', async () => {
      const store = make(capturedLogger().logger);
      try {
        await store.saveResult(sampleResult(`${name}-a`, { reference: `R-${name}`, conversationId: `C-${name}` }));
        await new Promise((r) => setTimeout(r, 5));
        await store.saveResult(sampleResult(`${name}-b`, { reference: `R-${name}`, conversationId: `C2-${name}`, outcome: 'declined', declineClass: 'do-not-honor' }));
        const a = await store.getById(`${name}-a`);
        expect(a).toMatchObject({ id: `${name}-a`, outcome: 'approved', amount: 4990, last4: '4242' });
        expect(typeof a?.savedAt).toBe('string');
        expect((await store.getByReference(`R-${name}`)).map((r) => r.id)).toEqual([`${name}-b`, `${name}-a`]);
        expect((await store.getByConversationId(`C-${name}`)).map((r) => r.id)).toEqual([`${name}-a`]);
        expect((await store.getByConversationId(`C2-${name}`)).map((r) => r.id)).toEqual([`${name}-b`]);
        expect(await store.getByReference('nothing')).toEqual([]);
        expect(await store.getById('nothing')).toBeUndefined();
        const recent = await store.recent(1);
        expect(recent.map((r) => r.id)).toEqual([`${name}-b`]);
      } finally {
        await store.close();
      }
    });

    it('refuses card-like records and logs without the digits', async () => {
      const { logger, lines } = capturedLogger();
      const store = make(logger);
      try {
        const attempts: (PaymentResult & { id: string })[] = [
          sampleResult(`${name}-pan-ref`, { reference: `INV ${TEST_PAN}` }),
          sampleResult(`${name}-pan-acct`, { accountId: TEST_PAN }),
          sampleResult(`${name}-pan-detail`, { handBack: { target: 'sip:x@y', status: 'failed', detail: `card ${TEST_PAN}` } }),
          { ...sampleResult(`${name}-field`), pan: 'x' } as PaymentResult & { id: string },
          { ...sampleResult(`${name}-cvc`), cvc: '123' } as PaymentResult & { id: string },
          { ...sampleResult(`${name}-exp`), expiry: '1230' } as PaymentResult & { id: string },
        ];
        for (const r of attempts) {
          await expect(store.saveResult(r)).rejects.toSatisfy((e: unknown) => isPayIvrError(e, 'ERR_STORE'));
          expect(await store.getById(r.id)).toBeUndefined();
        }
        await expect(store.liveCallStarted(live(`${name}-live-pan`, { conversationId: TEST_PAN }))).rejects.toSatisfy((e: unknown) =>
          isPayIvrError(e, 'ERR_STORE'),
        );
        expect((await store.liveCalls()).map((c) => c.id)).not.toContain(`${name}-live-pan`);
        expect(lines.filter((l) => l.includes('card data')).length).toBe(attempts.length + 1);
        expect(lines.join('\n')).not.toContain(TEST_PAN);
      } finally {
        await store.close();
      }
    });

    it('lists live calls with their phase, and forgets ended ones', async () => {
      const store = make(capturedLogger().logger);
      try {
        await store.liveCallStarted(live(`${name}-l1`, { startedAt: '2025-01-01T10:00:00.000Z', conversationId: 'cv-1' }));
        await store.liveCallStarted(live(`${name}-l2`, { startedAt: '2025-01-01T10:00:01.000Z' }));
        await store.liveCallState(`${name}-l1`, 'charging');
        await store.liveCallState('unknown', 'charging');
        let calls = (await store.liveCalls()).filter((c) => c.id.startsWith(`${name}-l`));
        expect(calls.map((c) => [c.id, c.state])).toEqual([
          [`${name}-l1`, 'charging'],
          [`${name}-l2`, 'amount'],
        ]);
        expect(calls[0]?.conversationId).toBe('cv-1');
        // A state that is not a plain word is stored as "unknown": no digits can get in.
        await store.liveCallState(`${name}-l2`, `card ${TEST_PAN}`);
        expect((await store.liveCalls()).find((c) => c.id === `${name}-l2`)?.state).toBe('unknown');
        await store.liveCallState(`${name}-l2`, 'amount');
        expect(typeof calls[0]?.node).toBe('string');
        await store.liveCallEnded(`${name}-l1`);
        calls = (await store.liveCalls()).filter((c) => c.id.startsWith(`${name}-l`));
        expect(calls.map((c) => c.id)).toEqual([`${name}-l2`]);
        await store.liveCallEnded(`${name}-l2`);
      } finally {
        await store.close();
      }
    });

    it('close is idempotent; live-call updates after close are ignored; saves are refused', async () => {
      const store = make(capturedLogger().logger);
      expect(await store.ping()).toBe(true);
      await store.close();
      await store.close();
      expect(await store.ping()).toBe(false);
      await store.liveCallEnded('x');
      await expect(store.saveResult(sampleResult('after-close'))).rejects.toSatisfy((e: unknown) => isPayIvrError(e, 'ERR_STORE'));
    });
  });
}

describe('findCardData', () => {
  it('flags forbidden fields and 13+ digit runs, names the path only', () => {
    expect(findCardData({ a: { PAN: 'x' } })).toEqual({ path: '$.a.PAN', rule: 'forbidden-field' });
    expect(findCardData({ list: ['ok', `x${'1'.repeat(13)}`] })).toEqual({ path: '$.list[1]', rule: 'digit-run' });
    expect(findCardData({ n: 1234567890123 })).toEqual({ path: '$.n', rule: 'digit-run' });
    expect(findCardData({ ref: '123456789012' })).toBeUndefined(); // 12 digits
    expect(findCardData({ ref: '1234-5678-9012-3456' })).toBeUndefined(); // runs of 4
    expect(findCardData({ transactionId: '8515131751004933' })).toBeUndefined();
    expect(findCardData({ pan: undefined })).toBeUndefined();
  });
});

describe('MemoryStore', () => {
  contract('memory', (logger) => new MemoryStore({ logger }));

  it('is bounded: keeps the last N results and cleans the indexes', async () => {
    const store = new MemoryStore({ maxResults: 3 });
    for (let i = 0; i < 5; i++) await store.saveResult(sampleResult(`m${i}`, { reference: i % 2 === 0 ? 'EVEN' : 'ODD', conversationId: `c${i}` }));
    expect(store.size).toBe(3);
    expect(await store.getById('m0')).toBeUndefined();
    expect(await store.getById('m1')).toBeUndefined();
    expect((await store.recent(10)).map((r) => r.id)).toEqual(['m4', 'm3', 'm2']);
    expect((await store.getByReference('EVEN')).map((r) => r.id)).toEqual(['m4', 'm2']);
    expect(await store.getByConversationId('c0')).toEqual([]);
    // Saving the same id again replaces it and moves it to the newest place.
    await store.saveResult(sampleResult('m2', { outcome: 'cancelled', reference: 'ODD' }));
    expect((await store.recent(10)).map((r) => r.id)).toEqual(['m2', 'm4', 'm3']);
    expect((await store.getByReference('EVEN')).map((r) => r.id)).toEqual(['m4']);
    expect((await store.getByReference('ODD')).map((r) => r.id)).toEqual(['m2', 'm3']);
    await store.close();
  });

  it('expires results after resultTtlSeconds (checked on read)', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ resultTtlSeconds: 60, now: () => now });
    await store.saveResult(sampleResult('t1'));
    now += 59_000;
    expect(await store.getById('t1')).toBeDefined();
    now += 2_000;
    expect(await store.getById('t1')).toBeUndefined();
    expect(await store.getByReference('INV-77')).toEqual([]);
    expect(store.size).toBe(0);
    await store.close();
  });

  it('returns copies', async () => {
    const store = new MemoryStore();
    await store.saveResult(sampleResult('c1'));
    const r = await store.getById('c1');
    if (r !== undefined) r.outcome = 'error';
    expect((await store.getById('c1'))?.outcome).toBe('approved');
    await store.close();
  });

  it('createStore picks the memory store by default', async () => {
    const store = createStore(configSchema.parse({}).store, capturedLogger().logger);
    expect(store.kind).toBe('memory');
    await store.close();
  });
});

describe('RedisStore (real redis-server)', () => {
  let server: RedisServer | undefined;
  let raw: Redis;
  const prefix = 'payivr-test:';

  beforeAll(async () => {
    server = await startRedisServer(REDIS_PORT);
    raw = new Redis(REDIS_URL);
    await raw.flushall();
  });

  afterAll(async () => {
    await raw?.quit();
    await server?.stop();
  });

  const makeRedis = (logger: Logger, nodeId?: string): RedisStore =>
    new RedisStore({ url: REDIS_URL, keyPrefix: prefix, resultTtlSeconds: 3600, maxResults: 100, logger, ...(nodeId ? { nodeId } : {}) });

  contract('redis', (logger) => makeRedis(logger));

  it('sets the TTL on results and indexes, and lays out the documented keys', async () => {
    const store = makeRedis(capturedLogger().logger);
    try {
      await store.saveResult(sampleResult('ttl-1', { reference: 'REF-TTL', conversationId: 'CONV-TTL' }));
      const ttl = await raw.ttl(`${prefix}result:ttl-1`);
      expect(ttl).toBeGreaterThan(3500);
      expect(ttl).toBeLessThanOrEqual(3600);
      expect(await raw.ttl(`${prefix}ref:REF-TTL`)).toBeGreaterThan(3500);
      expect(await raw.ttl(`${prefix}conv:CONV-TTL`)).toBeGreaterThan(3500);
      expect(await raw.zscore(`${prefix}recent`, 'ttl-1')).not.toBeNull();
      const json = JSON.parse((await raw.get(`${prefix}result:ttl-1`)) ?? '{}') as { last4?: string };
      expect(json.last4).toBe('4242');
    } finally {
      await store.close();
    }
  });

  it('prunes index members whose result expired', async () => {
    const store = makeRedis(capturedLogger().logger);
    try {
      await store.saveResult(sampleResult('gone-1', { reference: 'REF-GONE' }));
      await store.saveResult(sampleResult('gone-2', { reference: 'REF-GONE' }));
      await raw.del(`${prefix}result:gone-1`); // as if its TTL had run out
      expect((await store.getByReference('REF-GONE')).map((r) => r.id)).toEqual(['gone-2']);
      expect(await raw.zrange(`${prefix}ref:REF-GONE`, '0', '-1')).toEqual(['gone-2']);
    } finally {
      await store.close();
    }
  });

  it('trims the recent index to maxResults', async () => {
    const store = new RedisStore({ url: REDIS_URL, keyPrefix: 'payivr-trim:', resultTtlSeconds: 3600, maxResults: 3, logger: capturedLogger().logger });
    try {
      for (let i = 0; i < 6; i++) await store.saveResult(sampleResult(`trim-${i}`));
      expect(await raw.zcard('payivr-trim:recent')).toBe(3);
      expect((await store.recent(10)).length).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('shares live calls across nodes; a crashed node\'s calls vanish when its hash expires', async () => {
    const a = makeRedis(capturedLogger().logger, 'node-a');
    const b = makeRedis(capturedLogger().logger, 'node-b');
    try {
      await a.liveCallStarted(live('la-1', { startedAt: '2025-01-01T10:00:00.000Z' }));
      await b.liveCallStarted(live('lb-1', { startedAt: '2025-01-01T10:00:01.000Z', state: 'card' }));
      expect((await a.liveCalls()).map((c) => [c.id, c.node, c.state])).toEqual([
        ['la-1', 'node-a', 'amount'],
        ['lb-1', 'node-b', 'card'],
      ]);
      // Per-node expiry is set (30 s default) and renewed by the heartbeat.
      const pttl = await raw.pttl(`${prefix}live:node-b`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(30_000);
      // node-b "crashes": no heartbeat, its hash expires (simulated by deleting it).
      await raw.del(`${prefix}live:node-b`);
      expect((await a.liveCalls()).map((c) => c.id)).toEqual(['la-1']);
      expect(await raw.smembers(`${prefix}live-nodes`)).toEqual(['node-a']);
    } finally {
      await a.close();
      await b.close();
    }
    // A clean close removes the node's calls.
    expect(await raw.exists(`${prefix}live:node-a`)).toBe(0);
  });

  it('no key or value in Redis holds the test card number', async () => {
    const keys = await raw.keys('*');
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(k).not.toContain(TEST_PAN);
      const type = await raw.type(k);
      const dump =
        type === 'string'
          ? [await raw.get(k)]
          : type === 'zset'
            ? await raw.zrange(k, '0', '-1')
            : type === 'hash'
              ? Object.entries(await raw.hgetall(k)).flat()
              : type === 'set'
                ? await raw.smembers(k)
                : [];
      expect(dump.join('\n')).not.toContain(TEST_PAN);
    }
  });

  it('createStore builds a Redis store from the configuration', async () => {
    const cfg = configSchema.parse({ store: { type: 'redis', redisUrl: REDIS_URL, keyPrefix: 'payivr-cfg:' } }).store;
    const store = createStore(cfg, capturedLogger().logger, { nodeId: 'cfg-node' });
    try {
      expect(store.kind).toBe('redis');
      await store.saveResult(sampleResult('cfg-1'));
      expect(await raw.exists('payivr-cfg:result:cfg-1')).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('reports ERR_STORE when Redis is unreachable, without throwing elsewhere', async () => {
    const store = new RedisStore({
      url: 'redis://127.0.0.1:16389',
      keyPrefix: prefix,
      resultTtlSeconds: 3600,
      maxResults: 10,
      logger: capturedLogger().logger,
      redisOptions: { maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false },
    });
    try {
      expect(await store.ping()).toBe(false);
      await expect(store.getById('x')).rejects.toSatisfy((e: unknown) => isPayIvrError(e, 'ERR_STORE'));
    } finally {
      await store.close();
    }
  });
});
