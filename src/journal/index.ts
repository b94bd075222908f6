import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ResultStore } from '../store/types.js';
import { describeError } from '../errors.js';
import { Spool } from './spool.js';
import { StoreHealth } from './outbox.js';
import { PaymentJournal } from './journal.js';
import { DurableResultStore } from './durable-results.js';
import { LocalJournalBackend, retainAttempt } from './local-backend.js';
import { RedisJournalBackend } from './redis-backend.js';

export { Spool } from './spool.js';
export { PaymentJournal, type NewAttempt } from './journal.js';
export { Reconciler, type ReconcileEntry } from './reconciler.js';
export { DurableResultStore } from './durable-results.js';
export { chargeWithJournal, type JournaledCharge, type JournaledChargeRequest } from './journaled-charge.js';
export type { JournalAttempt } from './types.js';

interface JournalStatus {
  /** The store is unreachable: journal entries and results go to the spool. */
  degraded: boolean;
  spoolBytes: number;
  spoolMaxBytes: number;
  /** Entries waiting in the spool for the store. */
  pending: number;
}

export interface JournalRuntime {
  readonly journal: PaymentJournal;
  /** The result store the calls use: the configured one, behind the spool when it is Redis. */
  readonly store: ResultStore;
  status(): JournalStatus;
  /** Replays the spool to the store when it answers (also run by the loop). */
  replay(): Promise<void>;
  /** Starts the replay loop. */
  start(onStatus?: (s: JournalStatus) => void): void;
  /** Stops the loop, tries a last replay, closes the backend and the spool. Idempotent. */
  close(): Promise<void>;
}

/** The spool file of a configuration. */
function spoolPath(config: Config): string {
  return config.journal.spoolFile ?? join(config.journal.dataDir, 'journal-spool.jsonl');
}

/**
 * Opens the node's journal: the spool file, the journal backend (the spool itself with the
 * memory store; Redis with the Redis store) and, with Redis, the result store behind the spool.
 */
export function openJournal(config: Config, store: ResultStore, logger: Logger): JournalRuntime {
  const log = logger.child({ component: 'journal' });
  const retainMs = config.journal.retainSettledSeconds * 1000;
  const spool = Spool.open({ path: spoolPath(config), maxBytes: config.journal.maxSpoolBytes, logger: log, retain: retainAttempt(Date.now, retainMs) });
  const node = config.journal.nodeId ?? hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  let status: (() => void) | undefined;
  const health = new StoreHealth(log, () => status?.());
  const redis = config.store.type === 'redis';
  const backend = redis ? new RedisJournalBackend({ url: config.store.redisUrl, keyPrefix: config.store.keyPrefix, ttlSeconds: config.store.resultTtlSeconds }) : new LocalJournalBackend(spool);
  const journal = new PaymentJournal({ backend, spool, health: redis ? health : undefined, node, logger: log });
  const durable = redis ? new DurableResultStore(store, spool, health, log) : undefined;
  log.info({ spool: spool.path, backend: backend.kind, node, spoolBytes: spool.bytes, pending: journal.pending + (durable?.pending ?? 0) }, 'payment journal open');

  const current = (): JournalStatus => ({
    degraded: health.down,
    spoolBytes: spool.bytes,
    spoolMaxBytes: spool.maxBytes,
    pending: journal.pending + (durable?.pending ?? 0),
  });
  let replaying: Promise<void> | undefined;
  const replay = (): Promise<void> => {
    replaying ??= (async () => {
      if (!redis || (!health.down && current().pending === 0)) return;
      if (!(await backend.ping()) || !(await store.ping())) return;
      await journal.replay();
      await durable?.replay();
      if (current().pending === 0) health.ok();
    })()
      .catch((e: unknown) => log.warn({ err: describeError(e) }, 'spool replay failed'))
      .finally(() => (replaying = undefined));
    return replaying;
  };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  return {
    journal,
    store: durable ?? store,
    status: current,
    replay,
    start(onStatus) {
      if (onStatus !== undefined) status = () => onStatus(current());
      status?.();
      if (timer !== undefined) return;
      timer = setInterval(() => {
        void replay().then(() => status?.());
      }, config.journal.replayIntervalMs);
      timer.unref();
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      await replay();
      await journal.close();
      await spool.close();
    },
  };
}
