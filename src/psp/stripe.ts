import { AsyncLocalStorage } from 'node:async_hooks';
import Stripe from 'stripe';
import type { Logger } from '../log.js';
import type { ChargeRequest, LookupKey } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { PspError, httpStatusError, isPspError, parseRetryAfter } from './errors.js';
import { PspHttpClient } from './http.js';
import { stripeDeclineClass } from './decline-codes.js';
import { hasPanLikeDigits, sanitizePspBody } from './sanitize.js';

export interface StripeGatewayOptions {
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

interface StripeCardParams {
  number: string;
  exp_month: number;
  exp_year: number;
  cvc?: string;
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
 * Stripe adapter (official `stripe` package): one PaymentIntent created and confirmed in one call
 * with the raw card (`payment_method_data[card]`), flagged MOTO
 * (`payment_method_options[card][moto]=true`, no 3-D Secure), with our idempotency key.
 * Lookup: by PaymentIntent id (GET) or by idempotency key (search on the
 * `metadata[idempotency_key]` every charge carries); resending with the same key also replays.
 */
export class StripeGateway implements PspAdapter {
  readonly name: string;
  readonly capabilities: PspCapabilities = { idempotentReplay: true, lookupByKey: true, lookupById: true };
  readonly #stripe: Stripe;
  readonly #http = new PspHttpClient();
  readonly #logger: Logger;
  readonly #timeoutMs: number;

  constructor(opts: StripeGatewayOptions) {
    this.name = opts.name ?? 'stripe';
    this.#logger = opts.logger;
    this.#timeoutMs = opts.timeoutMs;
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

  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    const { card } = req;
    // The only place the Stripe path reveals card data: the params object handed to the SDK,
    // dropped when this call returns (JS strings cannot be zeroed; they live as long as this send).
    const cardParams: StripeCardParams = {
      number: card.pan.reveal(),
      exp_month: card.expiry.slice(0, 2),
      exp_year: 2000 + card.expiry.slice(2, 4),
    };
    if (card.securityCode && card.securityCode.length > 0) cardParams.cvc = card.securityCode.reveal();
    const paymentMethodData = { type: 'card', card: cardParams };
    const params: Stripe.PaymentIntentCreateParams = {
      amount: req.amount,
      currency: req.currency.toLowerCase(),
      confirm: true,
      // Card only, no redirect-based methods, and fail instead of waiting for 3-D Secure (MOTO).
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      error_on_requires_action: true,
      payment_method_data: paymentMethodData,
      payment_method_options: { card: { moto: true } },
      description: req.reference.slice(0, 1000),
      metadata: safeMetadata(req, this.#logger),
      expand: ['latest_charge'],
    };
    try {
      const pi = await currentSignal.run(signal, () =>
        this.#stripe.paymentIntents.create(params, { idempotencyKey: req.idempotencyKey, timeout: this.#timeoutMs }),
      );
      return intentOutcome(pi);
    } catch (e) {
      return this.#failure(e, 'charge');
    }
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
