import { createHash } from 'node:crypto';
import type { Logger } from '../../log.js';
import { describeError } from '../../errors.js';
import { findCardData } from '../../domain/card-data-guard.js';
import type { PaymentResult } from '../../domain/outcome.js';
import type { Spool } from '../../journal/spool.js';
import type { GenesysPlatformConfig } from '../../config/genesys-platform-schema.js';
import type { ParticipantDataWriter, WriteVerdict } from './types.js';
import { ACKED_PREFIX, DEAD_PREFIX, QUEUED_PREFIX, attributesToSend, retryDelayMs, type AckedWrite, type DeadLetter, type DeadReason, type QueuedWrite } from './write-back-records.js';

/**
 * The participant-data write-back queue (docs/genesys.md, "Delivery"): each change of a call's
 * result that carries a conversation id becomes a write of its attributes onto the Genesys
 * conversation, delivered durably, in order and retried.
 *
 * - Durable: the write is in the node's spool (fsync'd, survives kill -9) before enqueue()
 *   resolves; one spool key per call (`gw:q:<callRef>`), so a newer version of the call's result
 *   replaces an older one still queued (Genesys would end with the newer one either way).
 * - Ordered: per conversation strictly (only the oldest queued write of a conversation is sent,
 *   one at a time); across conversations in queue order (`seq`) as far as retries allow.
 * - Retried: a `retry` verdict backs the write off (retryBaseMs doubling to maxRetryMs, a longer
 *   Retry-After wins) and pauses the whole queue by the same rule, so an outage is probed by one
 *   write at a time instead of all; once a probe succeeds after an outage, everything is due
 *   again and goes out in queue order. `rejected`, maxAttempts tries or maxAgeMs of age send the
 *   write to the dead-letter list (`gw:d:<callRef>`), kept until an operator acts or a newer
 *   version of the call is written.
 * - Idempotent: each write has the key `<callRef>#<version>`; the version Genesys acknowledged is
 *   kept (`gw:a:<callRef>`), so a write is never sent after a newer one of the same call was
 *   acknowledged, and an unchanged re-save is not sent again. After a crash the write in flight
 *   may be sent once more: same attributes, same state at Genesys.
 */

/** The two pieces the integrator plugs in: the Platform API writer and the result -> attributes mapping. */
export interface WriteBackDeps {
  writer: ParticipantDataWriter;
  attributesOf: (result: PaymentResult) => Record<string, string>;
}

/** Counters the queue reports to (metrics). Never an id: closed words only. */
export interface WriteBackEvents {
  written(): void;
  retried(): void;
  deadLettered(reason: DeadReason): void;
  /** A write that could not be queued (card-like data, queue full, spool refused it). */
  refused(): void;
}

export interface WriteBackStatus {
  /** Writes waiting (in flight included). */
  queued: number;
  /** Age of the oldest queued write (0 when none). */
  oldestAgeMs: number;
  deadLetters: number;
  /** True from a failed write (Genesys unreachable or throttling) until a write succeeds again. */
  backingOff: boolean;
}

export type EnqueueOutcome = 'queued' | 'unchanged' | 'no-conversation' | 'refused';

interface WriteBackQueueOptions {
  spool: Spool;
  writer: ParticipantDataWriter;
  attributesOf: (result: PaymentResult) => Record<string, string>;
  delivery: GenesysPlatformConfig['delivery'];
  logger: Logger;
  events?: Partial<WriteBackEvents> | undefined;
  /** Writes in flight at once in normal operation (one per conversation at most). */
  concurrency?: number | undefined;
  /** Bounds that keep the write-back from filling the spool the payment journal needs. */
  maxQueued?: number | undefined;
  maxDeadLetters?: number | undefined;
  maxAckedMarks?: number | undefined;
  /** Clock and timer (tests drive them). */
  now?: (() => number) | undefined;
  setTimer?: ((fn: () => void, ms: number) => () => void) | undefined;
}

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_MAX_QUEUED = 20_000;
const DEFAULT_MAX_DEAD = 5_000;
const DEFAULT_MAX_ACKED = 20_000;
/** After this many retry verdicts in a row, a success means "outage over": every write is due again. */
const OUTAGE_RETRIES = 2;
/** New writes are refused once the spool file holds more than this share of journal.maxSpoolBytes. */
const SPOOL_SHARE = 0.5;

function realTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

/** A fingerprint without decimal digits (a hex run could look like a card number to the guard). */
function digestOf(attributes: Record<string, string>): string {
  const sorted = Object.keys(attributes)
    .sort()
    .map((k) => [k, attributes[k]]);
  const hex = createHash('sha256').update(JSON.stringify(sorted)).digest('hex').slice(0, 24);
  return hex.replace(/[0-9]/g, (d) => String.fromCharCode(103 + Number(d)));
}

export class WriteBackQueue {
  readonly #spool: Spool;
  readonly #writer: ParticipantDataWriter;
  readonly #attributesOf: (result: PaymentResult) => Record<string, string>;
  readonly #delivery: GenesysPlatformConfig['delivery'];
  readonly #log: Logger;
  readonly #events: Partial<WriteBackEvents>;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => () => void;
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #maxDead: number;
  readonly #maxAcked: number;
  /** Mirrors of the spool keys this queue owns (the spool's own scan covers every record). */
  readonly #queued = new Map<string, QueuedWrite & { digest: string }>();
  readonly #dead = new Map<string, DeadLetter>();
  readonly #acked = new Map<string, AckedWrite>();
  /** Conversation id -> the write being sent. */
  readonly #inFlight = new Map<string, QueuedWrite & { digest: string }>();
  /** callRef -> earliest next send (ms): the write's own backoff, in memory only. */
  readonly #notBefore = new Map<string, number>();
  /** Spool writes started by sends (close waits for them). */
  readonly #pending = new Set<Promise<unknown>>();
  #seq = 1;
  #retriesInRow = 0;
  #pauseUntil = 0;
  #cancelTimer: (() => void) | undefined;
  #started = false;
  #closed = false;
  #lastPrune = 0;

  constructor(opts: WriteBackQueueOptions) {
    this.#spool = opts.spool;
    this.#writer = opts.writer;
    this.#attributesOf = opts.attributesOf;
    this.#delivery = opts.delivery;
    this.#log = opts.logger;
    this.#events = opts.events ?? {};
    this.#now = opts.now ?? Date.now;
    this.#setTimer = opts.setTimer ?? realTimer;
    this.#concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    this.#maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.#maxDead = opts.maxDeadLetters ?? DEFAULT_MAX_DEAD;
    this.#maxAcked = opts.maxAckedMarks ?? DEFAULT_MAX_ACKED;
    this.#load();
  }

  /** Reads what an earlier run left in the spool and drops what it had already finished. */
  #load(): void {
    for (const [k, v] of this.#spool.entries(ACKED_PREFIX)) this.#acked.set(k.slice(ACKED_PREFIX.length), v as AckedWrite);
    for (const [k, v] of this.#spool.entries(DEAD_PREFIX)) {
      const d = v as DeadLetter;
      this.#dead.set(k.slice(DEAD_PREFIX.length), d);
      this.#seq = Math.max(this.#seq, d.seq + 1);
    }
    const stale: string[] = [];
    for (const [k, v] of this.#spool.entries(QUEUED_PREFIX)) {
      const w = v as QueuedWrite;
      const callRef = k.slice(QUEUED_PREFIX.length);
      this.#seq = Math.max(this.#seq, w.seq + 1);
      // Acknowledged or dead-lettered before the crash, its queue entry not yet removed.
      if ((this.#acked.get(callRef)?.version ?? 0) >= w.version || (this.#dead.get(callRef)?.version ?? 0) >= w.version) stale.push(k);
      else this.#queued.set(callRef, { ...w, digest: digestOf(attributesToSend(w)) });
    }
    for (const k of stale) this.#track(this.#spool.delete(k));
    if (this.#queued.size > 0 || this.#dead.size > 0) this.#log.info({ queued: this.#queued.size, deadLetters: this.#dead.size }, 'genesys write-back: writes of an earlier run found');
  }

  /** Starts delivering. */
  start(): void {
    this.#started = true;
    this.#plan();
  }

  status(): WriteBackStatus {
    let oldest = Infinity;
    for (const w of this.#queued.values()) oldest = Math.min(oldest, Date.parse(w.updatedAt));
    return {
      queued: this.#queued.size,
      oldestAgeMs: oldest === Infinity ? 0 : Math.max(0, this.#now() - oldest),
      deadLetters: this.#dead.size,
      // While writes wait, until one succeeds again, not just while the pause lasts: a probe in
      // flight (up to timeoutMs against a Genesys that hangs) is still the outage.
      backingOff: this.#now() < this.#pauseUntil || (this.#retriesInRow > 0 && this.#queued.size > 0),
    };
  }

  /** Queued writes in queue order (tests, diagnostics). */
  queued(): QueuedWrite[] {
    return [...this.#queued.values()].sort((a, b) => a.seq - b.seq).map(({ digest: _d, ...w }) => w);
  }

  /** Dead letters, newest first. */
  deadLetters(): DeadLetter[] {
    return [...this.#dead.values()].sort((a, b) => b.deadAt.localeCompare(a.deadAt) || b.seq - a.seq);
  }

  /**
   * Queues the write of `r` (resolves once it is on disk). Never throws: the payment goes on
   * whatever happens here; a write that cannot be queued is logged and counted.
   */
  async enqueueResult(r: PaymentResult & { id: string }): Promise<EnqueueOutcome> {
    const conversationId = r.conversationId;
    if (conversationId === undefined || conversationId === '') return 'no-conversation';
    const callRef = r.id;
    // A result the store would refuse is not written to Genesys either.
    const inResult = findCardData(r);
    if (inResult !== undefined) return this.#refuse(callRef, conversationId, `card-like data in the result at ${inResult.path} (${inResult.rule})`);
    let attributes: Record<string, string>;
    try {
      attributes = this.#attributesOf(r);
    } catch (e) {
      return this.#refuse(callRef, conversationId, `attributes could not be made: ${describeError(e)}`);
    }
    const digest = digestOf(attributes);
    // The PSP's transaction id is exempt from the digit-run rule in its own field only.
    const tx = r.transactionId;
    const txNames = tx === undefined || tx === '' ? [] : Object.keys(attributes).filter((k) => attributes[k] === tx);
    const stored: Record<string, string> = {};
    for (const [k, v] of Object.entries(attributes)) if (!txNames.includes(k)) stored[k] = v;
    const finding = findCardData({ conversationId, callRef, outcome: r.outcome, attributes: stored, transactionId: tx });
    if (finding !== undefined) return this.#refuse(callRef, conversationId, `card-like data at ${finding.path} (${finding.rule})`);

    const current = this.#queued.get(callRef);
    const sending = [...this.#inFlight.values()].find((w) => w.callRef === callRef);
    const acked = this.#acked.get(callRef);
    if (current !== undefined) {
      if (current.digest === digest) return 'unchanged';
    } else if ((sending ?? acked)?.digest === digest) {
      return 'unchanged';
    }
    if (current === undefined && this.#queued.size >= this.#maxQueued) return this.#refuse(callRef, conversationId, `queue full (${this.#maxQueued} writes)`);
    // The spool's room belongs to the payment journal first: charges stop when it is full.
    if (current === undefined && this.#spool.bytes > this.#spool.maxBytes * SPOOL_SHARE) return this.#refuse(callRef, conversationId, 'the spool is over half full: its room is kept for the payment journal');
    const version = Math.max(current?.version ?? 0, sending?.version ?? 0, acked?.version ?? 0, this.#dead.get(callRef)?.version ?? 0) + 1;
    const w: QueuedWrite = {
      key: `${callRef}#${version}`,
      conversationId,
      callRef,
      version,
      updatedAt: new Date(this.#now()).toISOString(),
      outcome: r.outcome,
      attributes: stored,
      ...(txNames.length > 0 ? { transactionId: tx, transactionIdAttributes: txNames } : {}),
      seq: this.#seq++,
      tries: 0,
    };
    this.#queued.set(callRef, { ...w, digest });
    this.#notBefore.delete(callRef);
    try {
      await this.#spool.set(QUEUED_PREFIX + callRef, w);
    } catch (e) {
      if (this.#queued.get(callRef)?.version === version) {
        if (current === undefined) this.#queued.delete(callRef);
        else this.#queued.set(callRef, current);
      }
      return this.#refuse(callRef, conversationId, `not kept in the spool: ${describeError(e)}`);
    }
    this.#log.debug({ conversationId, key: w.key, outcome: w.outcome }, 'genesys write-back queued');
    this.#plan();
    return 'queued';
  }

  #refuse(callRef: string, conversationId: string, why: string): 'refused' {
    this.#log.error({ conversationId, call: callRef, why }, 'genesys write-back: write not queued (the result itself is kept)');
    this.#events.refused?.();
    return 'refused';
  }

  /** Puts a dead letter back in the queue (tries and age start again). */
  async retryDeadLetter(callRef: string): Promise<'queued' | 'superseded' | 'not-found'> {
    const d = this.#dead.get(callRef);
    if (d === undefined) return 'not-found';
    this.#dead.delete(callRef);
    // A newer version is queued or acknowledged: this one must not be written after it.
    if ((this.#queued.get(callRef)?.version ?? 0) > d.version || (this.#acked.get(callRef)?.version ?? 0) >= d.version) {
      await this.#spool.delete(DEAD_PREFIX + callRef);
      return 'superseded';
    }
    const { reason: _r, deadAt: _at, lastError: _e, ...rest } = d;
    const w: QueuedWrite = { ...rest, version: d.version + 1, key: `${callRef}#${d.version + 1}`, updatedAt: new Date(this.#now()).toISOString(), seq: this.#seq++, tries: 0 };
    this.#queued.set(callRef, { ...w, digest: digestOf(attributesToSend(w)) });
    this.#notBefore.delete(callRef);
    await this.#spool.set(QUEUED_PREFIX + callRef, w);
    await this.#spool.delete(DEAD_PREFIX + callRef);
    this.#log.info({ conversationId: w.conversationId, key: w.key }, 'genesys write-back: dead letter queued again');
    this.#plan();
    return 'queued';
  }

  /** Drops a dead letter for good. */
  async dismissDeadLetter(callRef: string): Promise<boolean> {
    const d = this.#dead.get(callRef);
    if (d === undefined) return false;
    this.#dead.delete(callRef);
    await this.#spool.delete(DEAD_PREFIX + callRef);
    this.#log.info({ conversationId: d.conversationId, key: d.key }, 'genesys write-back: dead letter dismissed');
    return true;
  }

  /**
   * Stops sending; waits (at most `waitMs`) for the writes in flight and their spool records. A
   * write still unanswered then stays queued and is sent again at the next start. Idempotent.
   */
  async close(waitMs = 5_000): Promise<void> {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, waitMs)));
    await Promise.race([(async () => {
      while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    })(), late]);
    clearTimeout(timer);
  }

  /** Resolves once no write is in flight and the spool holds every outcome so far (tests, diagnostics). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #track(p: Promise<unknown>): void {
    const t = p.catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'genesys write-back: spool update failed')).finally(() => this.#pending.delete(t));
    this.#pending.add(t);
  }

  /** Sends what is due, dead-letters what is too old, and sets the timer for the next due write. */
  #plan(): void {
    if (!this.#started || this.#closed) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const now = this.#now();
    this.#prune(now);
    const ordered = [...this.#queued.values()].sort((a, b) => a.seq - b.seq);
    const heads: (QueuedWrite & { digest: string })[] = [];
    const seen = new Set<string>(this.#inFlight.keys());
    let wake = Infinity;
    for (const w of ordered) {
      const deadline = Date.parse(w.updatedAt) + this.#delivery.maxAgeMs;
      // One being sent is judged by its answer (its end plans again).
      if ([...this.#inFlight.values()].some((f) => f.callRef === w.callRef)) continue;
      if (deadline <= now) {
        this.#track(this.#deadLetter(w, 'max-age', w.lastError ?? 'not written before delivery.maxAgeMs'));
        continue;
      }
      wake = Math.min(wake, deadline);
      if (seen.has(w.conversationId)) continue;
      seen.add(w.conversationId);
      heads.push(w);
    }
    if (now < this.#pauseUntil) {
      this.#arm(Math.min(wake, this.#pauseUntil), now);
      return;
    }
    // While writes fail, one probe at a time, the least tried first (a write Genesys keeps
    // refusing does not hold the others back); otherwise in queue order.
    const probing = this.#retriesInRow > 0;
    const due = heads.filter((w) => (this.#notBefore.get(w.callRef) ?? 0) <= now);
    if (probing) due.sort((a, b) => a.tries - b.tries || a.seq - b.seq);
    let slots = (probing ? 1 : this.#concurrency) - this.#inFlight.size;
    for (const w of due) {
      if (slots <= 0) break;
      slots -= 1;
      this.#send(w);
    }
    for (const w of heads) {
      const nb = this.#notBefore.get(w.callRef) ?? 0;
      if (nb > now) wake = Math.min(wake, nb);
    }
    this.#arm(wake, now);
  }

  #arm(at: number, now: number): void {
    if (at === Infinity) return;
    this.#cancelTimer = this.#setTimer(() => {
      this.#cancelTimer = undefined;
      this.#plan();
    }, Math.max(0, at - now));
  }

  #send(w: QueuedWrite & { digest: string }): void {
    this.#inFlight.set(w.conversationId, w);
    const p = Promise.resolve()
      .then(() => this.#writer.write(w.conversationId, attributesToSend(w)))
      .catch((e: unknown): WriteVerdict => ({ kind: 'retry', why: describeError(e) }))
      .then((v) => this.#settle(w, v))
      .catch((e: unknown) => this.#log.warn({ err: describeError(e), key: w.key }, 'genesys write-back: settling a write failed'))
      .finally(() => {
        this.#inFlight.delete(w.conversationId);
        this.#plan();
      });
    this.#track(p);
  }

  async #settle(w: QueuedWrite & { digest: string }, v: WriteVerdict): Promise<void> {
    const now = this.#now();
    const at = new Date(now).toISOString();
    // A newer version of the call was queued meanwhile: it goes next, this one is done.
    const superseded = this.#queued.get(w.callRef)?.version !== w.version;
    if (v.kind === 'written') {
      if (this.#retriesInRow >= OUTAGE_RETRIES) {
        this.#log.info({ retries: this.#retriesInRow, queued: this.#queued.size }, 'genesys write-back: Genesys answers again, queued writes follow in order');
        // The failures were the outage's, not the writes': every write is due again.
        this.#notBefore.clear();
      }
      this.#retriesInRow = 0;
      this.#pauseUntil = 0;
      const mark: AckedWrite = { version: w.version, digest: w.digest, at };
      this.#acked.delete(w.callRef);
      this.#acked.set(w.callRef, mark);
      // The acknowledgement first: a crash before the queue entry goes never resends it.
      await this.#spool.set(ACKED_PREFIX + w.callRef, mark);
      // Asked again after the wait: a newer version may have been queued meanwhile.
      if (this.#queued.get(w.callRef)?.version === w.version) {
        this.#queued.delete(w.callRef);
        this.#notBefore.delete(w.callRef);
        await this.#spool.delete(QUEUED_PREFIX + w.callRef);
      }
      const dead = this.#dead.get(w.callRef);
      if (dead !== undefined && dead.version <= w.version) {
        this.#dead.delete(w.callRef);
        await this.#spool.delete(DEAD_PREFIX + w.callRef);
      }
      this.#log.info({ conversationId: w.conversationId, key: w.key, tries: w.tries + 1 }, 'genesys write-back delivered');
      this.#events.written?.();
      return;
    }
    if (v.kind === 'retry') {
      this.#retriesInRow += 1;
      this.#pauseUntil = now + retryDelayMs(this.#retriesInRow, this.#delivery, v.afterMs);
      if (this.#retriesInRow === 1) this.#log.warn({ conversationId: w.conversationId, key: w.key, why: v.why }, 'genesys write-back failing: writes stay queued and are retried');
      this.#events.retried?.();
      if (superseded) return;
      const next: QueuedWrite & { digest: string } = { ...w, tries: w.tries + 1, lastError: v.why, lastTryAt: at };
      if (next.tries >= this.#delivery.maxAttempts) {
        await this.#deadLetter(next, 'max-attempts', v.why);
        return;
      }
      this.#queued.set(w.callRef, next);
      this.#notBefore.set(w.callRef, now + retryDelayMs(next.tries, this.#delivery, v.afterMs));
      const { digest: _d, ...rec } = next;
      await this.#spool.set(QUEUED_PREFIX + w.callRef, rec);
      return;
    }
    if (superseded) return;
    const why = v.status === undefined ? v.why : `${v.status} ${v.why}`;
    await this.#deadLetter({ ...w, tries: w.tries + 1, lastError: why, lastTryAt: at }, 'rejected', why);
  }

  async #deadLetter(w: QueuedWrite & { digest: string }, reason: DeadReason, why: string): Promise<void> {
    const { digest: _d, ...rec } = w;
    const d: DeadLetter = { ...rec, lastError: why, reason, deadAt: new Date(this.#now()).toISOString() };
    this.#queued.delete(w.callRef);
    this.#notBefore.delete(w.callRef);
    this.#dead.set(w.callRef, d);
    // The dead letter first: a crash in between leaves both, and the load keeps the dead letter.
    await this.#spool.set(DEAD_PREFIX + w.callRef, d);
    await this.#spool.delete(QUEUED_PREFIX + w.callRef);
    this.#log.warn({ conversationId: w.conversationId, key: w.key, reason, tries: w.tries, lastError: why }, 'genesys write-back dead-lettered');
    this.#events.deadLettered?.(reason);
    while (this.#dead.size > this.#maxDead) {
      const oldest = this.deadLetters().at(-1);
      if (oldest === undefined) break;
      this.#dead.delete(oldest.callRef);
      await this.#spool.delete(DEAD_PREFIX + oldest.callRef);
      this.#log.warn({ conversationId: oldest.conversationId, key: oldest.key, max: this.#maxDead }, 'genesys write-back: oldest dead letter dropped (list full)');
    }
  }

  /** Acknowledgement marks older than maxAgeMs (or beyond the bound) go: no older write can be left by then. */
  #prune(now: number): void {
    if (now - this.#lastPrune < 60_000 && this.#acked.size <= this.#maxAcked) return;
    this.#lastPrune = now;
    for (const [callRef, a] of this.#acked) {
      if (now - Date.parse(a.at) < this.#delivery.maxAgeMs && this.#acked.size <= this.#maxAcked) break;
      this.#acked.delete(callRef);
      this.#track(this.#spool.delete(ACKED_PREFIX + callRef));
    }
  }
}
