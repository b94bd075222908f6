import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { CallEvents } from './live.js';
import { SegmentRecorder, type FunnelMetrics, type SegmentRecorderOptions } from './recorder.js';
import { MemorySegmentStore, RedisSegmentStore, type SegmentStore } from './segment-store.js';
import type { SegmentRecord } from './segment.js';
import { RedisEventRelay } from './relay.js';

export { CallEvents } from './live.js';
export { RedisEventRelay } from './relay.js';
export { SegmentRecorder, type FunnelMetrics } from './recorder.js';
export { MemorySegmentStore, RedisSegmentStore, type SegmentStore } from './segment-store.js';
export type { SegmentRecord } from './segment.js';

/** What the call layer and the admin API share for reports: the segment store, live events, node. */
export class Reports {
  readonly store: SegmentStore;
  readonly events = new CallEvents();
  readonly node: string;
  readonly #metrics: FunnelMetrics | undefined;
  readonly #log: Logger;
  #relay: RedisEventRelay | undefined;

  constructor(store: SegmentStore, opts: { node?: string; metrics?: FunnelMetrics; logger: Logger }) {
    this.store = store;
    // A node name is a plain word (it is validated with the segment).
    this.node = (opts.node ?? hostname()).replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 64) || 'node';
    this.#metrics = opts.metrics;
    this.#log = opts.logger;
  }

  recorder(o: Omit<SegmentRecorderOptions, 'node' | 'events' | 'metrics'>): SegmentRecorder {
    return new SegmentRecorder({ ...o, node: this.node, events: this.events, metrics: this.#metrics });
  }

  /** Shares live call events with the other nodes of this Redis (started in the background). */
  relayOver(url: string, keyPrefix: string): void {
    this.#relay = new RedisEventRelay({ url, keyPrefix, node: this.node, events: this.events, logger: this.#log });
    void this.#relay.start().catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'call event relay not subscribed'));
  }

  async close(): Promise<void> {
    await this.#relay?.close();
    await this.store.close();
  }

  /** Stores a segment; a failure is logged (path only) and never reaches the call. */
  async save(rec: SegmentRecord): Promise<void> {
    await this.store.save(rec).catch((e: unknown) => this.#log.error({ err: describeError(e) }, 'segment not stored'));
  }
}

/** The configured segment store: Redis when the result store is Redis, else memory. */
export function createReports(config: Pick<Config, 'store' | 'reports'>, logger: Logger, metrics?: FunnelMetrics, node?: string): Reports {
  const retentionSeconds = config.reports.retentionDays * 24 * 3600;
  const store: SegmentStore =
    config.store.type === 'redis'
      ? new RedisSegmentStore({ url: config.store.redisUrl, keyPrefix: config.store.keyPrefix, retentionSeconds, logger })
      : new MemorySegmentStore({ maxSegments: config.reports.maxSegments, retentionSeconds });
  const reports = new Reports(store, { logger, ...(metrics !== undefined ? { metrics } : {}), ...(node !== undefined ? { node } : {}) });
  if (config.store.type === 'redis') reports.relayOver(config.store.redisUrl, config.store.keyPrefix);
  return reports;
}
