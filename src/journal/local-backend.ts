import type { Spool } from './spool.js';
import type { JournalAttempt, JournalBackend } from './types.js';

/** Spool key prefix of journal records. */
const ATTEMPT_PREFIX = 'j:';

/**
 * Journal records in the node's spool file (memory store): put() resolves once fsync'd, so they
 * survive kill -9. Settled records are dropped at compaction once older than the retention.
 */
export class LocalJournalBackend implements JournalBackend {
  readonly kind = 'local';
  readonly #spool: Spool;

  constructor(spool: Spool) {
    this.#spool = spool;
  }

  async put(a: JournalAttempt): Promise<void> {
    const prev = this.#spool.get(ATTEMPT_PREFIX + a.id) as JournalAttempt | undefined;
    if (prev !== undefined && prev.version >= a.version) return;
    await this.#spool.set(ATTEMPT_PREFIX + a.id, a);
  }

  async get(id: string): Promise<JournalAttempt | undefined> {
    return structuredClone(this.#spool.get(ATTEMPT_PREFIX + id) as JournalAttempt | undefined);
  }

  async open(): Promise<JournalAttempt[]> {
    return this.#spool
      .entries(ATTEMPT_PREFIX)
      .map(([, v]) => v as JournalAttempt)
      .filter((a) => a.state === 'open')
      .sort((x, y) => x.createdAt.localeCompare(y.createdAt))
      .map((a) => structuredClone(a));
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    // The spool belongs to the journal, which closes it.
  }
}

/** Compaction rule of the spool: settled attempts go once older than `retainMs`. */
export function retainAttempt(now: () => number, retainMs: number): (key: string, value: unknown) => boolean {
  return (key, value) => {
    if (!key.startsWith(ATTEMPT_PREFIX)) return true;
    const a = value as JournalAttempt;
    if (a.state !== 'settled') return true;
    const at = Date.parse(a.settledAt ?? a.createdAt);
    return !(now() - at > retainMs);
  };
}
