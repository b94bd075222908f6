import { AsyncLocalStorage } from 'node:async_hooks';
import Stripe from 'stripe';
import type { Logger } from '../log.js';
import type { ChargeRequest, LookupKey } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { PspError, httpStatusError, isPspError, parseRetryAfter } from './errors.js';
import { PspHttpClient, header, type HttpResult } from './http.js';
import { cardFormBody, type FormField } from './card-body.js';
import { stripeDeclineClass } from './decline-codes.js';
import { hasPanLikeDigits, sanitizePspBody } from './sanitize.js';

interface StripeGatewayOptions {
  /** Secret key (sk_live_/sk_test_); never logged. */
  apiKey: string;
  /** API base URL; default https://api.stripe.com. The sandbox passes its own. */
  baseUrl?: string | undefined;
  /** Per-send timeout. */
  timeoutMs: number;
  logger: Logger;
  /** Gateway name in logs and metrics (default "stripe"). */
  name?: string;
}

/** The caller's AbortSignal, carried to our HTTP client through the SDK's call chain. */
const currentSignal = new AsyncLocalStorage<AbortSignal | undefined>();

/** Answer of one send, in the shape the SDK expects from an HTTP client. */
class SdkResponse extends Stripe.HttpClientResponse {
  readonly #text: string;

  constructor(status: number, headers: Record<string, string | string[]>, text: string) {
    super(status, headers);
    this.#text = text;
  }

  override getRawResponse(): unknown {
    return {};
  }

  override toStream(): unknown {
    throw new PspError('protocol', 'streaming responses are not used');
  }

  override toJSON(): Promise<unknown> {
    return Promise.resolve().then(() => this._parseResponseBody(this.#text) as unknown);
  }
}

/**
 * The SDK's HTTP layer replaced by ours: it honours the caller's AbortSignal, bounds the answer
 * size, zeroes the body buffer after the send, and throws PspError, whose code is not one the SDK
 * retries by itself (the SDK silently resends once on ECONNRESET even with maxNetworkRetries 0;
 * all resends belong to the resilient layer).
 */
class SdkHttpClient extends Stripe.HttpClient {
  readonly #http: PspHttpClient;

  constructor(http: PspHttpClient) {
    super();
    this.#http = http;
  }

  override getClientName(): string {
    return 'pay-ivr';
  }

  override async makeRequest(host: string, port: string, path: string, method: string, headers: Record<string, string | number | string[]>, requestData: string, protocol: string, timeout: number): Promise<SdkResponse> {
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) h[k] = Array.isArray(v) ? v.join(', ') : String(v);
    const body = requestData ? Buffer.from(requestData, 'utf8') : undefined;
    try {
      const res = await this.#http.send({
        method: method === 'POST' ? 'POST' : 'GET',
        url: new URL(`${protocol}://${host}:${port}${path}`),
        headers: h,
        body,
        timeoutMs: timeout,
        signal: currentSignal.getStore(),
      });
      const rh: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) rh[k] = v;
      return new SdkResponse(res.status, rh, res.text);
    } finally {
      body?.fill(0);
    }
  }
}

/** The `error` object of a Stripe error answer (the fields we read). */
interface StripeErrorBody {
  type?: string;
  code?: string;
  decline_code?: string;
  message?: string;
  payment_intent?: { id?: string };
}

/** Stripe allows 50 metadata keys of up to 40 characters, values up to 500. */
function safeMetadata(req: ChargeRequest, logger: Logger): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.metadata).slice(0, 45)) {
    if (hasPanLikeDigits(v)) {
      logger.warn({ key: k }, 'metadata value looks like card data: not sent');
      continue;
    }
    out[k.slice(0, 40)] = v.slice(0, 500);
  }
  out.reference = req.reference.slice(0, 500);
  out.idempotency_key = req.idempotencyKey;
  return out;
}

/**
 * Stripe adapter: one PaymentIntent created and confirmed in one call (our own form-encoded
 * request, see charge()) with the raw card (`payment_method_data[card]`), flagged MOTO
 * (`payment_method_options[card][moto]=true`, no 3-D Secure), with our idempotency key.
 * Lookup (official `stripe` package): by PaymentIntent id (GET) or by idempotency key (search on
 * the `metadata[idempotency_key]` every charge carries); resending with the same key also replays.
 */
export class StripeGateway implements PspAdapter {
  readonly name: string;
  readonly capabilities: PspCapabilities = { idempotentReplay: true, lookupByKey: true, lookupById: true };
  readonly #stripe: Stripe;
  readonly #http = new PspHttpClient();
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #apiKey: string;
  readonly #baseUrl: URL;

  constructor(opts: StripeGatewayOptions) {
    this.name = opts.name ?? 'stripe';
    this.#logger = opts.logger;
    this.#timeoutMs = opts.timeoutMs;
    this.#apiKey = opts.apiKey;
    this.#baseUrl = new URL(opts.baseUrl ?? 'https://api.stripe.com');
    const cfg: Stripe.StripeConfig = {
      maxNetworkRetries: 0,
      timeout: opts.timeoutMs,
      telemetry: false,
      httpClient: new SdkHttpClient(this.#http),
    };
    if (opts.baseUrl) {
      const u = new URL(opts.baseUrl);
      cfg.host = u.hostname;
      cfg.protocol = u.protocol === 'http:' ? 'http' : 'https';
      cfg.port = u.port || (u.protocol === 'http:' ? 80 : 443);
    }
    this.#stripe = new Stripe(opts.apiKey, cfg);
  }

  /**
   * The charge is the one call made without the SDK: the SDK only takes the body as a string, and
   * a string holding the card number cannot be wiped (it lingers in the V8 heap, then in freed
   * memory, long after the call). The form body is built as a Buffer straight from the card's
   * SensitiveDigits (cardFormBody), sent with our HTTP client, and zeroed once the send settles.
   * The answer (no card data in it) is mapped exactly as the SDK's would be.
   */
  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    const body = this.#chargeBody(req);
    let res: HttpResult;
    try {
      res = await this.#http.send({
        method: 'POST',
        url: new URL('/v1/payment_intents', this.#baseUrl),
        headers: {
          authorization: `Bearer ${this.#apiKey}`,
          'content-type': 'application/x-www-form-urlencoded',
          'idempotency-key': req.idempotencyKey,
          'stripe-version': Stripe.API_VERSION,
          'user-agent': 'pay-ivr',
          accept: 'application/json',
        },
        body,
        timeoutMs: this.#timeoutMs,
        signal,
      });
    } finally {
      body.fill(0);
    }
    return this.#chargeAnswer(res);
  }

  /** The PaymentIntent create-and-confirm parameters, form-encoded, card digits never as strings. */
  #chargeBody(req: ChargeRequest): Buffer {
    const { card } = req;
    const fields: FormField[] = [
      ['amount', String(req.amount)],
      ['currency', req.currency.toLowerCase()],
      ['confirm', 'true'],
      // Card only, no redirect-based methods, and fail instead of waiting for 3-D Secure (MOTO).
      ['automatic_payment_methods[enabled]', 'true'],
      ['automatic_payment_methods[allow_redirects]', 'never'],
      ['error_on_requires_action', 'true'],
      ['payment_method_data[type]', 'card'],
      ['payment_method_data[card][number]', { src: card.pan }],
      ['payment_method_data[card][exp_month]', { src: card.expiry, start: 0, end: 2 }],
      ['payment_method_data[card][exp_year]', { src: card.expiry, start: 2, end: 4, prefix: '20' }],
    ];
    if (card.securityCode && card.securityCode.length > 0) fields.push(['payment_method_data[card][cvc]', { src: card.securityCode }]);
    fields.push(['payment_method_options[card][moto]', 'true'], ['description', req.reference.slice(0, 1000)]);
    for (const [k, v] of Object.entries(safeMetadata(req, this.#logger))) fields.push([`metadata[${k}]`, v]);
    fields.push(['expand[0]', 'latest_charge']);
    return cardFormBody(fields);
  }

  /** Stripe's answer to a create: a PaymentIntent, a card error (decline), or a classified PspError. */
  #chargeAnswer(res: HttpResult): ChargeOutcome {
    let json: unknown;
    try {
      json = JSON.parse(res.text) as unknown;
    } catch {
      json = undefined;
    }
    if (res.status >= 200 && res.status < 300) {
      if (typeof json !== 'object' || json === null || (json as { object?: unknown }).object !== 'payment_intent') {
        throw new PspError('protocol', 'Stripe answer could not be read', { status: res.status, maybeExecuted: true });
      }
      return intentOutcome(json as Stripe.PaymentIntent);
    }
    const error = typeof json === 'object' && json !== null ? ((json as { error?: unknown }).error as StripeErrorBody | undefined) : undefined;
    if (error?.type === 'card_error') {
      return {
        status: 'declined',
        declineClass: stripeDeclineClass(error.code, error.decline_code),
        pspCode: error.decline_code || error.code,
        transactionId: error.payment_intent?.id,
      };
    }
    const safe = sanitizePspBody({ type: error?.type, code: error?.code, message: error?.message, status: res.status, requestId: header(res.headers, 'request-id') });
    this.#logger.warn({ op: 'charge', gateway: this.name, status: res.status, body: safe }, 'Stripe error answer');
    if (error?.type === 'idempotency_error') {
      // The key was used before: that earlier request may have charged. Look it up, never resend.
      throw new PspError('protocol', 'Stripe refused the idempotency key reuse', { status: res.status, pspCode: 'idempotency_error', maybeExecuted: true });
    }
    if (error === undefined && res.status < 500 && res.status !== 429 && res.status !== 409) {
      throw new PspError('protocol', `Stripe answer could not be read: HTTP ${res.status}`, { status: res.status, maybeExecuted: true });
    }
    throw httpStatusError(res.status, parseRetryAfter(res.headers['retry-after']), error?.code ?? error?.type);
  }

  async lookup(key: LookupKey, signal?: AbortSignal): Promise<ChargeOutcome | undefined> {
    try {
      if (key.transactionId) {
        const pi = await currentSignal.run(signal, () => this.#stripe.paymentIntents.retrieve(key.transactionId as string, { expand: ['latest_charge'] }, { timeout: this.#timeoutMs }));
        return intentOutcome(pi);
      }
      if (key.idempotencyKey) {
        if (!/^[A-Za-z0-9_-]+$/.test(key.idempotencyKey)) return undefined;
        const res = await currentSignal.run(signal, () =>
          this.#stripe.paymentIntents.search({ query: `metadata['idempotency_key']:'${key.idempotencyKey}'`, limit: 1, expand: ['data.latest_charge'] }, { timeout: this.#timeoutMs }),
        );
        const pi = res.data[0];
        return pi ? intentOutcome(pi) : undefined;
      }
      return undefined;
    } catch (e) {
      if (e instanceof Stripe.errors.StripeError && e.statusCode === 404) return undefined;
      const out = this.#failure(e, 'lookup');
      return out;
    }
  }

  /** A card error is a decline; every other failure is thrown as a classified PspError. */
  #failure(e: unknown, op: 'charge' | 'lookup'): ChargeOutcome {
    if (e instanceof Stripe.errors.StripeCardError || (e instanceof Stripe.errors.StripeError && e.type === 'StripeCardError')) {
      return {
        status: 'declined',
        declineClass: stripeDeclineClass(e.code, e.decline_code),
        pspCode: e.decline_code || e.code,
        transactionId: e.payment_intent?.id,
      };
    }
    if (isPspError(e)) throw e;
    if (e instanceof Stripe.errors.StripeConnectionError) {
      const detail: unknown = e.detail;
      if (isPspError(detail)) throw detail;
      throw new PspError('network', 'Stripe connection failed', { maybeExecuted: true });
    }
    if (e instanceof Stripe.errors.StripeError) {
      const status = e.statusCode;
      const safe = sanitizePspBody({ type: e.type, code: e.code, message: e.message, status, requestId: e.requestId });
      this.#logger.warn({ op, gateway: this.name, status, body: safe }, 'Stripe error answer');
      if (status === undefined) throw new PspError('protocol', 'Stripe answer could not be read', { maybeExecuted: true });
      if (e instanceof Stripe.errors.StripeIdempotencyError) {
        // The key was used before: that earlier request may have charged. Look it up, never resend.
        throw new PspError('protocol', 'Stripe refused the idempotency key reuse', { status, pspCode: 'idempotency_error', maybeExecuted: true });
      }
      const retryAfter = parseRetryAfter(e.headers?.['retry-after']);
      throw httpStatusError(status, retryAfter, e.code ?? e.rawType);
    }
    throw new PspError('protocol', `Stripe ${op} failed: ${e instanceof Error ? e.name : 'unknown error'}`, { maybeExecuted: true, cause: e });
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}

/** PaymentIntent -> our outcome. */
export function intentOutcome(pi: Stripe.PaymentIntent): ChargeOutcome {
  const charge = typeof pi.latest_charge === 'object' && pi.latest_charge !== null ? pi.latest_charge : undefined;
  switch (pi.status) {
    case 'succeeded':
    case 'requires_capture':
      return { status: 'approved', transactionId: pi.id, authCode: charge?.authorization_code ?? undefined };
    case 'requires_payment_method': {
      const err = pi.last_payment_error;
      if (!err) return { status: 'unknown', reason: 'stripe-requires-payment-method' };
      return { status: 'declined', declineClass: stripeDeclineClass(err.code, err.decline_code), pspCode: err.decline_code || err.code, transactionId: pi.id };
    }
    case 'canceled':
    case 'requires_action':
    case 'requires_confirmation':
      return { status: 'declined', declineClass: 'do-not-honor', pspCode: pi.status, transactionId: pi.id };
    default:
      return { status: 'unknown', reason: `stripe-${pi.status}` };
  }
}
