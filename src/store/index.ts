import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { ResultStore } from './types.js';

export type { ResultStore, StoredResult } from './types.js';

export { MemoryStore } from './memory.js';
export { RedisStore } from './redis.js';

interface CreateStoreOptions {
  /** Node id for the Redis live-call keys (default: hostname + random suffix). */
  nodeId?: string;
  /** Redis live-call hash lifetime without heartbeat, seconds (default 30). */
  liveTtlSeconds?: number;
}

/** The configured store: in-memory (one process) or Redis (several nodes). Redis connects lazily in the background. */
export function createStore(cfg: Config['store'], logger: Logger, opts: CreateStoreOptions = {}): ResultStore {
  if (cfg.type === 'redis') {
    return new RedisStore({
      url: cfg.redisUrl,
      keyPrefix: cfg.keyPrefix,
      resultTtlSeconds: cfg.resultTtlSeconds,
      maxResults: cfg.maxResults,
      logger,
      ...(opts.nodeId !== undefined ? { nodeId: opts.nodeId } : {}),
      ...(opts.liveTtlSeconds !== undefined ? { liveTtlSeconds: opts.liveTtlSeconds } : {}),
    });
  }
  return new MemoryStore({ maxResults: cfg.maxResults, resultTtlSeconds: cfg.resultTtlSeconds, logger });
}
