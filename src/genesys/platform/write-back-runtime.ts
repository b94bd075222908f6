import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { ResultStore } from '../../store/types.js';
import type { Spool } from '../../journal/spool.js';
import { WriteBackQueue, type WriteBackDeps, type WriteBackEvents } from './write-back.js';
import { WriteBackResultStore } from './write-back-store.js';

/** Makes the writer and the attribute mapping of a configuration (the Platform API client's factory). */
export type WriteBackDepsFactory = (config: Config, logger: Logger, node: string) => WriteBackDeps | Promise<WriteBackDeps>;

export interface WriteBackRuntime {
  readonly queue: WriteBackQueue;
  /** The result store every writer of results uses: `inner` with the write-back in front. */
  readonly store: ResultStore;
  /** Stops the queue (writes in flight get a moment), then closes the writer. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the write-back of `genesys.platform` on the journal's spool (its own key prefix `gw:`):
 * queued writes of an earlier run are delivered first, in their order.
 */
export async function openWriteBack(opts: {
  config: Config;
  spool: Spool;
  inner: ResultStore;
  deps: WriteBackDepsFactory;
  node: string;
  events?: Partial<WriteBackEvents> | undefined;
  logger: Logger;
}): Promise<WriteBackRuntime> {
  const log = opts.logger.child({ component: 'genesys-write-back' });
  const { writer, attributesOf } = await opts.deps(opts.config, log, opts.node);
  const queue = new WriteBackQueue({ spool: opts.spool, writer, attributesOf, delivery: opts.config.genesys.platform.delivery, logger: log, events: opts.events });
  queue.start();
  let closing: Promise<void> | undefined;
  return {
    queue,
    store: new WriteBackResultStore(opts.inner, queue),
    close() {
      closing ??= (async () => {
        await queue.close();
        await writer.close();
      })();
      return closing;
    },
  };
}
