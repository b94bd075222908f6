import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../log.js';
import type { DeclineClass } from '../domain/outcome.js';
import type { ChargeRequest, LookupKey } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { PspError, httpStatusError, parseRetryAfter } from './errors.js';
import { PspHttpClient, header } from './http.js';
import { CardJsonBody } from './card-body.js';
import { adyenDeclineClass } from './decline-codes.js';
import { hasPanLikeDigits, sanitizePspBody } from './sanitize.js';

/** Checkout API version of @adyen/api-library 32 (its PaymentsApi base path). */
export const ADYEN_API_VERSION = 'v72';

interface AdyenGatewayOptions {
  apiKey: string;
  merchantAccount: string;
  /** Checkout base URL including the version, e.g. https://checkout-test.adyen.com/v72. */
  baseUrl: string;
  timeoutMs: number;
  logger: Logger;
  name?: string;
  /** Cardholder name to send (we collect none by phone); tests use it for Adyen's holderName triggers. */
  holderName?: (req: ChargeRequest) => string | undefined;
}

/** The Checkout base URL for a config: explicit, live (with the company's prefix) or test. */
export function adyenBaseUrl(cfg: { baseUrl?: string | undefined; environment: 'test' | 'live'; liveUrlPrefix?: string | undefined }): string {
  if (cfg.baseUrl) return cfg.baseUrl.replace(/\/+$/, '');
  if (cfg.environment === 'live') {
    if (!cfg.liveUrlPrefix) throw new PspError('protocol', 'Adyen live environment needs psp.liveUrlPrefix');
    return `https://${cfg.liveUrlPrefix}-checkout-live.adyenpayments.com/checkout/${ADYEN_API_VERSION}`;
  }
  return `https://checkout-test.adyen.com/${ADYEN_API_VERSION}`;
}

/** The part of a /payments answer we read (its fields are checked against the library's PaymentResponse). */
const paymentResponse = z.object({
  pspReference: z.string().optional(),
  resultCode: z.string(),
  refusalReason: z.string().optional(),
  refusalReasonCode: z.string().optional(),
  additionalData: z.record(z.string(), z.unknown()).optional(),
});

export type AdyenPaymentResponse = z.infer<typeof paymentResponse>;

/**
 * How each Adyen resultCode is read. Any other code (Received, Pending, ...) means the final result
 * comes later (webhook): the outcome is unknown now. Checked against the library's ResultCodeEnum.
 */
export const ADYEN_RESULT_CODES = {
  Authorised: 'approved',
  Refused: 'refused',
  Cancelled: 'refused',
  Error: 'error',
  // 3-D Secure asked for a MOTO payment: nothing was charged.
  RedirectShopper: 'authentication',
  IdentifyShopper: 'authentication',
  ChallengeShopper: 'authentication',
} as const;

const errorResponse = z.object({
  status: z.number().optional(),
  errorCode: z.string().optional(),
  message: z.string().optional(),
  errorType: z.string().optional(),
});

/** Validation errors that are really the card being wrong: re-enter rather than psp-error. */
const VALIDATION_DECLINES: Readonly<Record<string, DeclineClass>> = {
  '101': 'incorrect-number', // Invalid card number
  '103': 'incorrect-cvc', // CVC is not the right length
  '129': 'expired-card', // Expiry date invalid
};

/** Adyen metadata limits: 20 entries, keys up to 20 characters, values up to 80. */
function safeMetadata(req: ChargeRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.metadata).slice(0, 20)) {
    if (!hasPanLikeDigits(v)) out[k.slice(0, 20)] = v.slice(0, 80);
  }
  return out;
}

/**
 * The Checkout `/payments` request this adapter sends. The tests check it against
 * @adyen/api-library's PaymentRequest, so the adapter and the sandbox cannot drift from Adyen's
 * API together. Card fields hold CardJsonBody placeholders, never digits.
 */
interface AdyenPaymentRequest {
  amount: { value: number; currency: string };
  reference: string;
  merchantAccount: string;
  paymentMethod: { type: 'scheme'; number: string; expiryMonth: string; expiryYear: string; cvc?: string; holderName?: string };
  shopperInteraction: 'Moto';
  metadata?: Record<string, string>;
}

export function adyenPaymentRequest(req: ChargeRequest, merchantAccount: string, b: CardJsonBody, holderName?: string): AdyenPaymentRequest {
  const { card } = req;
  const paymentMethod: AdyenPaymentRequest['paymentMethod'] = {
    type: 'scheme',
    number: b.digits(card.pan),
    expiryMonth: b.digits(card.expiry, 0, 2),
    expiryYear: b.digits(card.expiry, 2, 4, '20'),
  };
  if (card.securityCode && card.securityCode.length > 0) paymentMethod.cvc = b.digits(card.securityCode);
  if (holderName) paymentMethod.holderName = holderName;
  const metadata = safeMetadata(req);
  return {
    amount: { value: req.amount, currency: req.currency.toUpperCase() },
    reference: req.reference,
    merchantAccount,
    paymentMethod,
    shopperInteraction: 'Moto',
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
  };
}

/**
 * Adyen adapter: Checkout `POST /payments` with the raw card (`paymentMethod.type: scheme`),
 * `shopperInteraction: "Moto"` (telephone order: no 3-D Secure), amount in minor units,
 * `X-API-Key` and `Idempotency-Key`. Spoken over HTTP directly, not through
 * @adyen/api-library: the library's HTTP client is https-only (it cannot reach the loopback
 * sandbox), has no AbortSignal, and takes the body as a string we could not zero.
 *
 * Lookup: Adyen's Checkout API has no read-back of a payment, so an earlier attempt is found by
 * resending the identical request with the same key (Adyen returns the first answer and never
 * charges again); `lookup()` itself answers undefined and the resilient layer replays.
 */
export class AdyenGateway implements PspAdapter {
  readonly name: string;
  readonly capabilities: PspCapabilities = { idempotentReplay: true, lookupByKey: false, lookupById: false };
  readonly #opts: AdyenGatewayOptions;
  readonly #http = new PspHttpClient();
  readonly #url: URL;

  constructor(opts: AdyenGatewayOptions) {
    this.name = opts.name ?? 'adyen';
    this.#opts = opts;
    this.#url = new URL(`${opts.baseUrl.replace(/\/+$/, '')}/payments`);
  }

  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    const b = new CardJsonBody();
    const body = b.toBuffer(adyenPaymentRequest(req, this.#opts.merchantAccount, b, this.#opts.holderName?.(req)));
    let res;
    try {
      res = await this.#http.send({
        method: 'POST',
        url: this.#url,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'x-api-key': this.#opts.apiKey, 'idempotency-key': req.idempotencyKey },
        body,
        timeoutMs: this.#opts.timeoutMs,
        signal,
      });
    } finally {
      body.fill(0);
    }
    return this.#outcome(res.status, res.text, res.headers);
  }

  /** No read-back API: see the class comment. The resilient layer finds attempts by replay. */
  async lookup(_key: LookupKey): Promise<ChargeOutcome | undefined> {
    return undefined;
  }

  #outcome(status: number, text: string, headers: IncomingHttpHeaders): ChargeOutcome {
    let json: unknown;
    try {
      json = JSON.parse(text) as unknown;
    } catch {
      json = undefined;
    }
    if (status === 200) {
      const p = paymentResponse.safeParse(json);
      if (!p.success) throw new PspError('protocol', 'Adyen answer could not be read', { status, maybeExecuted: true });
      return adyenPaymentOutcome(p.data);
    }
    const e = errorResponse.safeParse(json);
    const code = e.success ? e.data.errorCode : undefined;
    this.#opts.logger.warn({ gateway: this.name, status, body: sanitizePspBody(text) }, 'Adyen error answer');
    const declineClass = status === 422 && code !== undefined ? VALIDATION_DECLINES[code] : undefined;
    if (declineClass) return { status: 'declined', declineClass, pspCode: `validation-${code}` };
    const transient = header(headers, 'transient-error') === 'true';
    throw httpStatusError(status, parseRetryAfter(headers['retry-after']), code, transient);
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}

export function adyenPaymentOutcome(p: AdyenPaymentResponse): ChargeOutcome {
  const authCode = p.additionalData?.authCode;
  const kind = Object.hasOwn(ADYEN_RESULT_CODES, p.resultCode) ? ADYEN_RESULT_CODES[p.resultCode as keyof typeof ADYEN_RESULT_CODES] : undefined;
  switch (kind) {
    case 'approved':
      if (!p.pspReference) throw new PspError('protocol', 'Adyen authorised without a pspReference', { maybeExecuted: true });
      return { status: 'approved', transactionId: p.pspReference, authCode: typeof authCode === 'string' ? authCode : undefined };
    case 'refused':
      return { status: 'declined', declineClass: adyenDeclineClass(p.refusalReasonCode), pspCode: p.refusalReasonCode, transactionId: p.pspReference };
    case 'error':
      return {
        status: 'declined',
        declineClass: p.refusalReasonCode === '4' || p.refusalReasonCode === '0' || p.refusalReasonCode === undefined ? 'processing-error' : adyenDeclineClass(p.refusalReasonCode),
        pspCode: p.refusalReasonCode,
        transactionId: p.pspReference,
      };
    case 'authentication':
      return { status: 'declined', declineClass: 'do-not-honor', pspCode: p.resultCode, transactionId: p.pspReference };
    default:
      return { status: 'unknown', reason: `adyen-${p.resultCode.toLowerCase()}` };
  }
}
