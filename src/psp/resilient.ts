import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import { describeError } from '../errors.js';
import type { ChargeRequest, LookupKey, PaymentGateway } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { CircuitBreaker, type BreakerGate, type BreakerState } from './breaker.js';
import { PspError, isPspError } from './errors.js';
import { isValidIdempotencyKey } from './idempotency.js';

export interface ResilientOptions {
  /** Total time for one charge: all sends, backoff waits and the lookup. */
  budgetMs: number;
  /** Sends of the same body with the same key (1 = no resend). */
  maxSends: number;
  /** First backoff wait; doubles per resend, with jitter. */
  backoffMs: number;
  maxBackoffMs: number;
  breakerFailures: number;
  breakerResetMs: number;
  /** Time kept back from the budget for lookups: no plain send starts after budget - reserve (default a quarter). */
  lookupReserveMs?: number;
  logger?: Logger;
  now?: () => number;
  random?: () => number;
}

interface ChargeReport {
  psp: string;
  status: ChargeOutcome['status'];
  /** Sends of the charge request (resends included, lookups excluded). */
  sends: number;
  /** The outcome came from the lookup (search or replay), not from a send's answer. */
  viaLookup: boolean;
  reason?: string | undefined;
  ms: number;
}

type ResilientEvents = {
  breaker: [state: BreakerState, psp: string];
  charge: [report: ChargeReport];
};

interface ResilientStats {
  charges: number;
  approved: number;
  declined: number;
  unknown: number;
  failed: number;
  sends: number;
  resends: number;
  lookups: number;
  lookupHits: number;
  circuitRejections: number;
}

/** Why a charge ended unknown, in the words the logs and metrics use. */
type UnknownReason = string;

/**
 * The no-double-charge layer around one PSP adapter (docs/psp.md):
 * - the caller's idempotency key (made once per attempt) is used for every send of the attempt;
 * - on timeout, network error, 5xx, 429 or 409 the identical request is resent with the same key,
 *   with exponential backoff and jitter (Retry-After honoured), up to maxSends;
 * - while a send may have charged, it keeps looking up (PSP search by key and idempotent replay,
 *   in turns, through 409/429/5xx/timeouts) until a definite answer or the end of the budget;
 * - `failed` (psp-error) only when the card certainly was not charged; `unknown` (unconfirmed)
 *   when it may have been; never a new key, never a second charge;
 * - a circuit breaker per PSP answers `failed` / `circuit-open` at once while the PSP is down.
 * `charge()` never throws.
 */
export class ResilientGateway extends TypedEmitter<ResilientEvents> implements PaymentGateway {
  readonly name: string;
  readonly #inner: PspAdapter;
  readonly #opts: ResilientOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #breaker: CircuitBreaker;
  readonly #stats: ResilientStats = { charges: 0, approved: 0, declined: 0, unknown: 0, failed: 0, sends: 0, resends: 0, lookups: 0, lookupHits: 0, circuitRejections: 0 };
  #closed = false;

  constructor(inner: PspAdapter, opts: ResilientOptions) {
    super();
    this.name = inner.name;
    this.#inner = inner;
    this.#opts = opts;
    this.#log = opts.logger ?? silentLogger;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#breaker = new CircuitBreaker({
      failures: opts.breakerFailures,
      resetMs: opts.breakerResetMs,
      now: this.#now,
      onChange: (s) => {
        const level = s === 'open' ? 'warn' : 'info';
        this.#log[level]({ gateway: this.name, breaker: s }, s === 'open' ? 'PSP circuit open: charges fail fast' : `PSP circuit ${s}`);
        this.emit('breaker', s, this.name);
      },
    });
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  get capabilities(): PspCapabilities {
    return this.#inner.capabilities;
  }

  stats(): ResilientStats {
    return { ...this.#stats };
  }

  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    const t0 = this.#now();
    this.#stats.charges += 1;
    let sends = 0;
    const done = (out: ChargeOutcome, viaLookup: boolean): ChargeOutcome => {
      this.#stats[out.status] += 1;
      const reason = out.status === 'unknown' || out.status === 'failed' ? out.reason : undefined;
      const report: ChargeReport = { psp: this.name, status: out.status, sends, viaLookup, reason, ms: this.#now() - t0 };
      const fields = { gateway: this.name, key: req.idempotencyKey, ref: req.reference, status: out.status, sends, viaLookup, reason, ms: report.ms, ...(out.status === 'declined' ? { declineClass: out.declineClass, pspCode: out.pspCode } : {}) };
      if (out.status === 'unknown') this.#log.warn(fields, 'charge outcome could not be confirmed (unconfirmed): left for reconciliation');
      else if (out.status === 'failed') this.#log.warn(fields, 'charge failed, card not charged (psp-error)');
      else this.#log.info(fields, 'charge done');
      this.emit('charge', report);
      return out;
    };
    if (this.#closed) return done({ status: 'failed', reason: 'gateway-closed' }, false);
    if (!isValidIdempotencyKey(req.idempotencyKey)) {
      this.#log.error({ gateway: this.name }, 'invalid idempotency key: charge not sent');
      return done({ status: 'failed', reason: 'invalid-idempotency-key' }, false);
    }

    const caps = this.#inner.capabilities;
    const budgetMs = this.#opts.budgetMs;
    const deadline = t0 + budgetMs;
    let searchOk = caps.lookupByKey;
    let replayOk = caps.idempotentReplay;
    const reserve = searchOk || replayOk ? (this.#opts.lookupReserveMs ?? Math.floor(budgetMs / 4)) : 0;
    // Plain sends stop here, so lookups always have some of the budget.
    const sendDeadline = deadline - reserve;
    const maxSends = caps.idempotentReplay ? this.#opts.maxSends : 1;
    /** A send may have reached the PSP's processing: from now on only a definite answer ends the attempt. */
    let maybeCharged = false;
    /** No more plain sends (maxSends reached, a 4xx, a pending answer, the circuit opened). */
    let sendingDone = false;
    let lookupTurn = 0;
    let waits = 0;
    let reason: UnknownReason = 'no-answer';

    for (;;) {
      if (signal?.aborted) {
        reason = 'cancelled';
        break;
      }
      let op: 'send' | 'search' | 'replay';
      if (!sendingDone && sends < maxSends && this.#now() < sendDeadline) {
        op = 'send';
      } else {
        sendingDone = true;
        // Nothing can have been charged: no lookup needed, the card was not charged.
        if (!maybeCharged || (!searchOk && !replayOk)) break;
        // Search and replay take turns: a search may lag behind the PSP's books, and a replay
        // answers 409 while the first send is still executing.
        op = searchOk && (!replayOk || lookupTurn % 2 === 0) ? 'search' : 'replay';
        lookupTurn += 1;
      }
      const left = (op === 'send' ? sendDeadline : deadline) - this.#now();
      if (left <= 0) {
        reason = `${reason}-budget-exhausted`;
        break;
      }
      let gate: BreakerGate | undefined;
      if (op === 'send') {
        gate = this.#breaker.acquire();
        if (gate === 'reject') {
          if (sends === 0) {
            this.#stats.circuitRejections += 1;
            return done({ status: 'failed', reason: 'circuit-open' }, false);
          }
          // The PSP looks down, but an earlier send may have charged: lookups go on (they never charge).
          reason = 'circuit-open';
          sendingDone = true;
          continue;
        }
        sends += 1;
        this.#stats.sends += 1;
        if (sends > 1) this.#stats.resends += 1;
      } else {
        this.#stats.lookups += 1;
      }
      const opTimeout = AbortSignal.timeout(left);
      const opSignal = signal ? AbortSignal.any([signal, opTimeout]) : opTimeout;
      let retryAfterMs: number | undefined;
      try {
        const out = op === 'search' ? await this.#inner.lookup({ idempotencyKey: req.idempotencyKey }, opSignal) : await this.#inner.charge(req, opSignal);
        if (op === 'send') this.#breaker.success();
        if (out !== undefined && out.status !== 'unknown' && out.status !== 'failed') {
          if (op !== 'send') {
            this.#stats.lookupHits += 1;
            this.#log.info({ gateway: this.name, key: req.idempotencyKey, how: op, status: out.status }, 'lookup found the attempt');
          }
          return done(out, op !== 'send');
        }
        if (out === undefined) {
          // Search: no record (yet). Proof of nothing while a send may still be executing.
          reason = 'no-record';
        } else {
          // The PSP has the attempt but no final result yet (pending): only lookups can tell more.
          maybeCharged = true;
          sendingDone = true;
          reason = out.reason;
        }
      } catch (e) {
        const pe = asPspError(e);
        if (op !== 'search') maybeCharged = maybeCharged || pe.maybeExecuted;
        if (signal?.aborted) {
          if (gate !== undefined) this.#breaker.release(gate);
          reason = 'cancelled';
          break;
        }
        // Our own deadline fired: for the PSP's health that is a timeout.
        const kind = pe.kind === 'aborted' && opTimeout.aborted ? 'timeout' : pe.kind;
        this.#log.warn({ gateway: this.name, key: req.idempotencyKey, op, send: sends, kind, status: pe.status, pspCode: pe.pspCode, err: pe.message }, op === 'send' ? 'PSP send failed' : 'lookup failed');
        retryAfterMs = pe.retryAfterMs;
        if (kind === 'protocol' || kind === 'aborted') {
          // The PSP answered (4xx) or we cannot say: repeating the same request cannot help.
          if (gate !== undefined) {
            if (kind === 'protocol') this.#breaker.success();
            else this.#breaker.release(gate);
          }
          if (op === 'send') sendingDone = true;
          if (op === 'search') searchOk = false;
          if (op === 'replay') replayOk = false;
          reason = kind === 'protocol' ? 'psp-protocol-error' : 'aborted';
        } else {
          // Only timeouts, network errors and 5xx say the PSP is down; 409 (key in flight) and 429
          // (slow down) come from a PSP that is up, so they are repeated but do not trip the breaker.
          if (gate !== undefined) {
            const down = kind === 'timeout' || kind === 'network' || (pe.status ?? 500) >= 500;
            if (down) this.#breaker.failure();
            else this.#breaker.release(gate);
          }
          // A lookup that our own budget cut short says nothing new about the attempt: what the
          // PSP said last (pending, no record) stays the reason the caller and reconciliation see.
          if (!(op !== 'send' && opTimeout.aborted)) reason = kind === 'http' ? `http-${pe.status ?? 'error'}` : kind;
          if (op === 'send' && this.#breaker.state === 'open') {
            reason = 'circuit-open';
            sendingDone = true;
          }
        }
      }
      waits += 1;
      const wait = this.#backoff(waits, retryAfterMs);
      const canSend = !sendingDone && sends < maxSends;
      // Without a possible charge only a send can help, and sends end at sendDeadline.
      const limit = canSend && !maybeCharged ? sendDeadline : deadline;
      if (!canSend && !maybeCharged) continue; // the loop ends at once: not charged
      if (this.#now() + wait >= limit) {
        reason = `${reason}-budget-exhausted`;
        break;
      }
      try {
        await delay(wait, undefined, { signal });
      } catch {
        reason = 'cancelled';
        break;
      }
    }
    return done(maybeCharged ? { status: 'unknown', reason } : { status: 'failed', reason }, false);
  }

  /** Exponential backoff with equal jitter, capped; a Retry-After longer than that wins. */
  #backoff(send: number, retryAfterMs: number | undefined): number {
    const base = Math.min(this.#opts.maxBackoffMs, this.#opts.backoffMs * 2 ** (send - 1));
    const jittered = Math.round(base / 2 + (this.#random() * base) / 2);
    return Math.max(jittered, retryAfterMs ?? 0);
  }

  async lookup(key: LookupKey, signal?: AbortSignal): Promise<ChargeOutcome | undefined> {
    const timeout = AbortSignal.timeout(this.#opts.budgetMs);
    return this.#inner.lookup(key, signal ? AbortSignal.any([signal, timeout]) : timeout);
  }

  /** Stops charging (later charges answer unknown) and closes the adapter. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.removeAllListeners();
    await this.#inner.close();
  }
}

function asPspError(e: unknown): PspError {
  if (isPspError(e)) return e;
  return new PspError('protocol', `adapter failed: ${describeError(e)}`, { maybeExecuted: true, cause: e });
}
