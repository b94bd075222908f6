import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import type { Spool } from './spool.js';

/**
 * Write-behind to a remote store (Redis) through the spool: a write goes to the store; when the
 * store fails (or is known down) it is appended to the spool under `<prefix><id>` instead, and a
 * replay loop pushes spooled entries to the store once it answers again, deleting each from the
 * spool only after the store took it. While an id has an entry in the spool, later writes of the
 * same id go to the spool too, so the store never receives an older version after a newer one.
 * Writes are idempotent (whole-record replace or versioned), so a replay may repeat safely.
 */

interface OutboxHealth {
  /** Called on every success/failure of the remote store; logs once per outage. */
  failed(what: string, err: unknown): void;
  ok(): void;
  /** True while the store is known to be down (writes go straight to the spool). */
  readonly down: boolean;
}

/** Shared outage tracker of the outboxes of one node: one warning per outage, one line when it ends. */
export class StoreHealth implements OutboxHealth {
  #down = false;
  #since = 0;
  readonly #log: Logger;
  readonly #onChange: (down: boolean) => void;

  constructor(log: Logger, onChange: (down: boolean) => void = () => undefined) {
    this.#log = log;
    this.#onChange = onChange;
  }

  get down(): boolean {
    return this.#down;
  }

  failed(what: string, err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#since = Date.now();
    this.#log.warn({ what, err: describeError(err) }, 'store unreachable: journal entries and results are spooled locally until it returns');
    this.#onChange(true);
  }

  ok(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log.info({ outageMs: Date.now() - this.#since }, 'store reachable again: spool replayed');
    this.#onChange(false);
  }
}

export class Outbox<T> {
  readonly #spool: Spool;
  readonly #prefix: string;
  readonly #push: (v: T) => Promise<void>;
  readonly #health: OutboxHealth;
  readonly #log: Logger;
  #draining: Promise<number> | undefined;

  constructor(opts: { spool: Spool; prefix: string; push: (v: T) => Promise<void>; health: OutboxHealth; logger: Logger }) {
    this.#spool = opts.spool;
    this.#prefix = opts.prefix;
    this.#push = opts.push;
    this.#health = opts.health;
    this.#log = opts.logger;
  }

  get pending(): number {
    return this.#spool.entries(this.#prefix).length;
  }

  /** The spooled (not yet delivered) value of `id`. */
  spooled(id: string): T | undefined {
    return this.#spool.get(this.#prefix + id) as T | undefined;
  }

  /**
   * Delivers `v` to the store, or spools it. Resolves once it is in one of the two; throws only
   * when neither took it (spool full, disk error): the caller must then not go on as if recorded.
   */
  async write(id: string, v: T): Promise<'stored' | 'spooled'> {
    const key = this.#prefix + id;
    if (!this.#health.down && !this.#spool.has(key)) {
      try {
        await this.#push(v);
        return 'stored';
      } catch (e) {
        this.#health.failed(this.#prefix, e);
      }
    }
    await this.#spool.set(key, v);
    return 'spooled';
  }

  /** Pushes every spooled entry to the store; stops at the first failure. Returns how many went. */
  drain(): Promise<number> {
    this.#draining ??= this.#drain().finally(() => (this.#draining = undefined));
    return this.#draining;
  }

  async #drain(): Promise<number> {
    let n = 0;
    for (const [key, v] of this.#spool.entries(this.#prefix)) {
      try {
        await this.#push(v as T);
      } catch (e) {
        this.#health.failed(this.#prefix, e);
        return n;
      }
      // Delete only what was pushed: a newer value spooled meanwhile stays for the next round.
      if (this.#spool.get(key) === v) await this.#spool.delete(key);
      n += 1;
    }
    if (n > 0) this.#log.info({ kind: this.#prefix, replayed: n }, 'spool replayed to the store');
    return n;
  }
}
