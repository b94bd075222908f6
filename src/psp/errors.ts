import { PayIvrError } from '../errors.js';

/** What went wrong with one PSP send, as far as retrying is concerned. */
type PspFailureKind =
  | 'timeout' // no answer in time: the PSP may or may not have executed it
  | 'network' // connection failed or was cut
  | 'http' // 5xx, 429, 409 in-flight: the PSP asked us to come back
  | 'aborted' // the caller (or the budget) gave up
  | 'protocol'; // a 4xx or an answer we cannot read: resending the same bytes cannot help

interface PspErrorInit {
  status?: number | undefined;
  retryAfterMs?: number | undefined;
  /** False only when the request certainly never reached the PSP's processing (refused connection, 429). */
  maybeExecuted?: boolean | undefined;
  /** The PSP's own error code (never card data). */
  pspCode?: string | undefined;
  cause?: unknown;
}

/**
 * A failed PSP send, classified. Adapters throw it; the resilient wrapper decides: retryable
 * failures are resent with the same key and body, the others end the attempt. Messages carry
 * status codes and PSP error codes only, never request or response bodies.
 */
export class PspError extends PayIvrError {
  readonly kind: PspFailureKind;
  readonly retryable: boolean;
  readonly maybeExecuted: boolean;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly pspCode: string | undefined;

  constructor(kind: PspFailureKind, message: string, init: PspErrorInit = {}) {
    super(kind === 'protocol' ? 'ERR_PSP_PROTOCOL' : 'ERR_PSP_TRANSPORT', message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = kind;
    this.retryable = kind === 'timeout' || kind === 'network' || kind === 'http';
    this.maybeExecuted = init.maybeExecuted ?? kind !== 'protocol';
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
    this.pspCode = init.pspCode;
  }
}

export function isPspError(e: unknown): e is PspError {
  return e instanceof PspError;
}

/**
 * Classifies an HTTP status that is neither a success nor a card decline: 5xx, 429 and 409
 * (a request with the same key still in flight) are worth resending; every other 4xx is not.
 */
export function httpStatusError(status: number, retryAfterMs: number | undefined, pspCode?: string, transient = false): PspError {
  if (status >= 500 || status === 429 || status === 409 || transient) {
    return new PspError('http', `PSP answered HTTP ${status}`, { status, retryAfterMs, pspCode, maybeExecuted: status !== 429 });
  }
  return new PspError('protocol', `PSP rejected the request: HTTP ${status}${pspCode ? ` (${pspCode})` : ''}`, { status, pspCode, maybeExecuted: false });
}

/** Parses a Retry-After header (seconds or HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
