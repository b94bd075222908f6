import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import { describeError } from '../errors.js';
import type { ChargeRequest, LookupKey, PaymentGateway } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
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
  /** Time kept back from the budget for the lookup (default a quarter of the budget). */
  lookupReserveMs?: number;
  logger?: Logger;
  now?: () => number;
  random?: () => number;
}

export interface ChargeReport {
  psp: string;
  status: ChargeOutcome['status'];
  /** Sends of the charge request (resends included, lookups excluded). */
  sends: number;
  /** The outcome came from the lookup (search or replay), not from a send's answer. */
  viaLookup: boolean;
  reason?: string | undefined;
  ms: number;
}

export type ResilientEvents = {
  breaker: [state: BreakerState, psp: string];
  charge: [report: ChargeReport];
};

export interface ResilientStats {
  charges: number;
  approved: number;
  declined: number;
  unknown: number;
  sends: number;
  resends: number;
  lookups: number;
  lookupHits: number;
  circuitRejections: number;
}

/** Why a charge ended unknown, in the words the logs and metrics use. */
type UnknownReason = string;

/**
 * The no-double-charge layer around one PSP adapter (DESIGN.md section 5):
 * - the caller's idempotency key (made once per attempt) is used for every send of the attempt;
 * - on timeout, network error, 5xx, 429 or 409 the identical request is resent with the same key,
 *   with exponential backoff and jitter (Retry-After honoured), within the time budget;
 * - if the outcome is still unknown it is looked up (PSP search by key, else an idempotent replay);
 * - if it is still unknown the result is `unknown` (psp-error for the caller), never a new charge;
 * - a circuit breaker per PSP answers `unknown` / `circuit-open` at once while the PSP is down.
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
  readonly #stats: ResilientStats = { charges: 0, approved: 0, declined: 0, unknown: 0, sends: 0, resends: 0, lookups: 0, lookupHits: 0, circuitRejections: 0 };
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
      const reason = out.status === 'unknown' ? out.reason : undefined;
      const report: ChargeReport = { psp: this.name, status: out.status, sends, viaLookup, reason, ms: this.#now() - t0 };
      const fields = { gateway: this.name, key: req.idempotencyKey, ref: req.reference, status: out.status, sends, viaLookup, reason, ms: report.ms, ...(out.status === 'declined' ? { declineClass: out.declineClass, pspCode: out.pspCode } : {}) };
      if (out.status === 'unknown') this.#log.warn(fields, 'charge outcome unknown (psp-error)');
      else this.#log.info(fields, 'charge done');
      this.emit('charge', report);
      return out;
    };
    if (this.#closed) return done({ status: 'unknown', reason: 'gateway-closed' }, false);
    if (!isValidIdempotencyKey(req.idempotencyKey)) {
      this.#log.error({ gateway: this.name }, 'invalid idempotency key: charge not sent');
      return done({ status: 'unknown', reason: 'invalid-idempotency-key' }, false);
    }

    const caps = this.#inner.capabilities;
    const budgetMs = this.#opts.budgetMs;
    const deadline = t0 + budgetMs;
    const canLookup = caps.lookupByKey || caps.idempotentReplay;
    const reserve = canLookup ? (this.#opts.lookupReserveMs ?? Math.floor(budgetMs / 4)) : 0;
    const sendDeadline = deadline - reserve;
    const maxSends = caps.idempotentReplay ? this.#opts.maxSends : 1;
    let ambiguous = false;
    let reason: UnknownReason = 'no-answer';

    for (let n = 1; n <= maxSends; n++) {
      const gate = this.#breaker.acquire();
      if (gate === 'reject') {
        if (n === 1) {
          this.#stats.circuitRejections += 1;
          return done({ status: 'unknown', reason: 'circuit-open' }, false);
        }
        reason = 'circuit-open';
        break;
      }
      const left = sendDeadline - this.#now();
      if (left <= 0) {
        this.#breaker.release(gate);
        reason = 'budget-exhausted';
        break;
      }
      sends += 1;
      this.#stats.sends += 1;
      if (n > 1) this.#stats.resends += 1;
      const sendTimeout = AbortSignal.timeout(left);
      const sendSignal = signal ? AbortSignal.any([signal, sendTimeout]) : sendTimeout;
      try {
        const out = await this.#inner.charge(req, sendSignal);
        this.#breaker.success();
        if (out.status !== 'unknown') return done(out, false);
        // The PSP answered but has no final result yet (pending): only a lookup can tell more.
        ambiguous = true;
        reason = out.reason;
        break;
      } catch (e) {
        const pe = asPspError(e);
        if (signal?.aborted) {
          this.#breaker.release(gate);
          ambiguous = ambiguous || pe.maybeExecuted;
          reason = 'cancelled';
          break;
        }
        // Our own send deadline fired: for the PSP's health that is a timeout.
        const kind = pe.kind === 'aborted' && sendTimeout.aborted ? 'timeout' : pe.kind;
        this.#log.warn({ gateway: this.name, key: req.idempotencyKey, send: n, kind, status: pe.status, pspCode: pe.pspCode, err: pe.message }, 'PSP send failed');
        if (kind === 'protocol' || kind === 'aborted') {
          // The PSP answered (4xx) or we cannot say: resending the same bytes cannot help.
          if (kind === 'protocol') this.#breaker.success();
          else this.#breaker.release(gate);
          ambiguous = ambiguous || pe.maybeExecuted;
          reason = kind === 'protocol' ? 'psp-protocol-error' : 'aborted';
          break;
        }
        // Only timeouts, network errors and 5xx say the PSP is down; 409 (key in flight) and 429
        // (slow down) come from a PSP that is up, so they are resent but do not trip the breaker.
        const down = kind === 'timeout' || kind === 'network' || (pe.status ?? 500) >= 500;
        if (down) this.#breaker.failure();
        else this.#breaker.release(gate);
        ambiguous = ambiguous || pe.maybeExecuted;
        reason = kind === 'http' ? `http-${pe.status ?? 'error'}` : kind;
        if (this.#breaker.state === 'open') {
          reason = 'circuit-open';
          break;
        }
        if (n < maxSends) {
          const wait = this.#backoff(n, pe.retryAfterMs);
          if (this.#now() + wait >= sendDeadline) {
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
      }
    }

    if (ambiguous && !signal?.aborted) {
      const found = await this.#find(req, deadline, signal);
      if (found) return done(found, true);
    }
    return done({ status: 'unknown', reason }, false);
  }

  /**
   * Looks for the attempt's outcome: the PSP's search by idempotency key when it has one, then an
   * idempotent replay (the same body with the same key: the PSP answers what it did the first
   * time and never charges again).
   */
  async #find(req: ChargeRequest, deadline: number, signal: AbortSignal | undefined): Promise<ChargeOutcome | undefined> {
    const caps = this.#inner.capabilities;
    const left = Math.max(deadline - this.#now(), 1);
    const timeout = AbortSignal.timeout(left);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const tries: { how: string; run: () => Promise<ChargeOutcome | undefined> }[] = [];
    if (caps.lookupByKey) tries.push({ how: 'search', run: () => this.#inner.lookup({ idempotencyKey: req.idempotencyKey }, sig) });
    if (caps.idempotentReplay) tries.push({ how: 'replay', run: () => this.#inner.charge(req, sig) });
    for (const t of tries) {
      if (sig.aborted) break;
      this.#stats.lookups += 1;
      try {
        const out = await t.run();
        if (out && out.status !== 'unknown') {
          this.#stats.lookupHits += 1;
          this.#breaker.success();
          this.#log.info({ gateway: this.name, key: req.idempotencyKey, how: t.how, status: out.status }, 'lookup found the attempt');
          return out;
        }
        this.#log.info({ gateway: this.name, key: req.idempotencyKey, how: t.how }, 'lookup found no final outcome');
      } catch (e) {
        this.#log.warn({ gateway: this.name, key: req.idempotencyKey, how: t.how, err: describeError(e) }, 'lookup failed');
      }
    }
    return undefined;
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
