import type { Face, FaceRequest, FaceResponse, FaceResult, LedgerEntry } from './types.js';
import { parseForm, formList, formObject, formString, type FormObject } from './form.js';
import { fieldNumber, takeFormCardFields, wipeTaken, type TakenField } from './card-fields.js';
import { sandboxBrand, scenarioFor, type StripeDecline } from './cards.js';
import { authCode, stripeId } from './ids.js';

/**
 * The Stripe face: the subset of the PaymentIntents API the Stripe adapter uses, with Stripe's
 * wire format (form-encoded bodies with bracket notation, Bearer secret key, JSON answers,
 * `{ error: {...} }` error shape, HTTP 402 for card errors) and idempotency semantics (same key
 * and same parameters: the first answer replayed with `Idempotent-Replayed: true`; same key and
 * other parameters: 400 idempotency_error; key still in flight: 409).
 */

interface ChargeRecord {
  id: string;
  status: 'succeeded' | 'failed';
  authorizationCode: string | undefined;
  brand: string;
  last4: string;
  moto: boolean;
  failureCode: string | undefined;
  failureMessage: string | undefined;
}

interface PaymentIntentRecord {
  id: string;
  amount: number;
  currency: string;
  status: 'succeeded' | 'requires_payment_method';
  created: number;
  description: string | null;
  metadata: Record<string, string>;
  paymentMethod: string;
  charge: ChargeRecord;
  lastPaymentError: Record<string, unknown> | null;
}

const API_PREFIX = '/v1/';
const CARD_NUMBER = 'payment_method_data[card][number]';
const CARD_EXP_MONTH = 'payment_method_data[card][exp_month]';
const CARD_EXP_YEAR = 'payment_method_data[card][exp_year]';
const CARD_CVC = 'payment_method_data[card][cvc]';
/** Taken out of the body as digits before parsing (card-fields.ts). */
const STRIPE_CARD_KEYS: ReadonlySet<string> = new Set([CARD_NUMBER, CARD_EXP_MONTH, CARD_EXP_YEAR, CARD_CVC]);
const DOC = 'https://stripe.com/docs/error-codes';

function err(status: number, error: Record<string, unknown>): FaceResponse {
  return { status, body: { error } };
}

function invalid(message: string, param?: string, code = 'parameter_invalid'): FaceResult {
  return { response: err(400, { type: 'invalid_request_error', code, message, ...(param ? { param } : {}) }), store: false };
}

interface StripeFaceOptions {
  /** Accepted secret keys; empty = any `sk_test_` key. */
  keys: readonly string[];
  now: () => Date;
}

export class StripeFace implements Face {
  readonly name = 'stripe' as const;
  readonly strictKeyReuse = true;
  readonly #opts: StripeFaceOptions;
  #intents = new Map<string, PaymentIntentRecord>();

  constructor(opts: StripeFaceOptions) {
    this.#opts = opts;
  }

  matches(path: string): boolean {
    return path.startsWith(API_PREFIX);
  }

  #apiKey(req: FaceRequest): string | undefined {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/.exec(h) : null;
    return m?.[1];
  }

  authenticate(req: FaceRequest): FaceResponse | undefined {
    const key = this.#apiKey(req);
    const ok = key !== undefined && (this.#opts.keys.length === 0 ? key.startsWith('sk_test_') : this.#opts.keys.includes(key));
    if (ok) return undefined;
    return err(401, { type: 'invalid_request_error', message: key === undefined ? 'You did not provide an API key.' : 'Invalid API Key provided.' });
  }

  idempotencyKey(req: FaceRequest): { key: string | undefined; error?: FaceResponse } {
    const h = req.headers['idempotency-key'];
    const key = Array.isArray(h) ? h[0] : h;
    if (key === undefined || key === '') return { key: undefined };
    if (key.length > 255) return { key: undefined, error: err(400, { type: 'invalid_request_error', message: 'Idempotency-Key is longer than 255 characters.' }) };
    return { key };
  }

  keyScope(req: FaceRequest): string {
    return `stripe:${this.#apiKey(req) ?? ''}`;
  }

  keyMismatch(): FaceResponse {
    return err(400, {
      type: 'idempotency_error',
      message:
        'Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used in the original request if you meant to execute a different request.',
    });
  }

  inFlight(): FaceResponse {
    return err(409, {
      type: 'invalid_request_error',
      code: 'idempotency_key_in_use',
      message: 'There is currently another in-progress request using this Idempotent Key. Please try again later.',
    });
  }

  injected(status: number): FaceResponse {
    if (status === 429) return err(429, { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly.' });
    if (status >= 500) return err(status, { type: 'api_error', message: 'An unknown error occurred while processing this request (sandbox fault).' });
    return err(status, { type: 'invalid_request_error', message: `Sandbox fault: HTTP ${status}.` });
  }

  replayHeaders(): Record<string, string> {
    return { 'idempotent-replayed': 'true' };
  }

  reset(): void {
    this.#intents.clear();
  }

  handle(req: FaceRequest, book: (e: LedgerEntry) => void): FaceResult {
    const path = req.path;
    if (req.method === 'POST' && path === '/v1/payment_intents') return this.#create(req, book);
    if (req.method === 'GET' && path === '/v1/payment_intents/search') return this.#search(parseForm(req.query));
    const m = /^\/v1\/payment_intents\/([A-Za-z0-9_]+)$/.exec(path);
    if (req.method === 'GET' && m) return this.#retrieve(m[1] as string, parseForm(req.query));
    return { response: err(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${path}).` }), store: false };
  }

  #retrieve(id: string, q: FormObject): FaceResult {
    const pi = this.#intents.get(id);
    if (!pi) return { response: err(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${id}'` }), store: false };
    return { response: { status: 200, body: this.#json(pi, formList(q, 'expand')) }, store: false };
  }

  /** `query=metadata['key']:'value'`, the only clause the adapter uses. */
  #search(q: FormObject): FaceResult {
    const query = formString(q, 'query') ?? '';
    const m = /^\s*metadata\[(['"])([^'"]+)\1\]\s*:\s*(['"])([^'"]*)\3\s*$/.exec(query);
    if (!m) return invalid('The sandbox search supports one clause: metadata[\'key\']:\'value\'.', 'query');
    const key = m[2] as string;
    const value = m[4] as string;
    const limit = Math.min(100, Math.max(1, Number(formString(q, 'limit') ?? '10') || 10));
    const expand = formList(q, 'expand').map((e) => e.replace(/^data\./, ''));
    const hits = [...this.#intents.values()].filter((pi) => pi.metadata[key] === value).sort((a, b) => b.created - a.created);
    return {
      response: {
        status: 200,
        body: { object: 'search_result', url: '/v1/payment_intents/search', has_more: hits.length > limit, next_page: null, data: hits.slice(0, limit).map((pi) => this.#json(pi, expand)) },
      },
      store: false,
    };
  }

  #create(req: FaceRequest, book: (e: LedgerEntry) => void): FaceResult {
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return invalid('Request bodies must be application/x-www-form-urlencoded.');
    }
    const taken = takeFormCardFields(req.body, STRIPE_CARD_KEYS);
    try {
      return this.#createWith(req, parseForm(taken.text), taken.fields, book);
    } finally {
      wipeTaken(taken);
    }
  }

  #createWith(req: FaceRequest, p: FormObject, cardFields: ReadonlyMap<string, TakenField>, book: (e: LedgerEntry) => void): FaceResult {
    const amountText = formString(p, 'amount');
    if (amountText === undefined) return invalid('Missing required param: amount.', 'amount', 'parameter_missing');
    if (!/^\d+$/.test(amountText) || Number(amountText) < 1) return invalid('Invalid positive integer', 'amount');
    const currency = formString(p, 'currency')?.toLowerCase();
    if (currency === undefined) return invalid('Missing required param: currency.', 'currency', 'parameter_missing');
    if (!/^[a-z]{3}$/.test(currency)) return invalid(`Invalid currency: ${currency.slice(0, 8)}.`, 'currency');
    if (formString(p, 'confirm') !== 'true') return invalid('The sandbox supports create-and-confirm only: send confirm=true.', 'confirm');
    if (formString(p, 'payment_method_data', 'type') !== 'card') return invalid('payment_method_data[type] must be card.', 'payment_method_data[type]');
    const number = cardFields.get(CARD_NUMBER);
    const expMonth = cardFields.get(CARD_EXP_MONTH);
    const expYear = cardFields.get(CARD_EXP_YEAR);
    const cvc = cardFields.get(CARD_CVC);
    if (number === undefined) return invalid('Missing required param: payment_method_data[card][number].', 'payment_method_data[card][number]', 'parameter_missing');
    if (expMonth === undefined || expYear === undefined) return invalid('Missing required param: payment_method_data[card][exp_month].', 'payment_method_data[card][exp_month]', 'parameter_missing');
    const metadata: Record<string, string> = {};
    const md = formObject(p, 'metadata');
    if (md) for (const [k, v] of Object.entries(md)) if (typeof v === 'string') metadata[k] = v;
    const moto = formString(p, 'payment_method_options', 'card', 'moto') === 'true';
    const amount = Number(amountText);
    const description = formString(p, 'description') ?? null;
    const expand = formList(p, 'expand');
    const key = this.idempotencyKey(req).key;

    const cardError = (d: StripeDecline, param?: string): FaceResponse =>
      err(402, { type: 'card_error', code: d.code, ...(d.declineCode ? { decline_code: d.declineCode } : {}), message: d.message, doc_url: `${DOC}#${d.code}`, ...(param ? { param } : {}) });

    // Checks Stripe makes before any PaymentIntent exists: number format and expiry.
    if (number === 'invalid' || number.length < 12 || number.length > 19) return { response: cardError({ code: 'invalid_number', message: 'Your card number is not a valid credit card number.' }, 'payment_method_data[card][number]'), store: true };
    const month = fieldNumber(expMonth);
    const year = expYear !== 'invalid' && expYear.length === 2 ? 2000 + fieldNumber(expYear) : fieldNumber(expYear);
    if (expMonth === 'invalid' || expMonth.length > 2 || !(month >= 1 && month <= 12)) return { response: cardError({ code: 'invalid_expiry_month', message: "Your card's expiration month is invalid." }, 'payment_method_data[card][exp_month]'), store: true };
    const now = this.#opts.now();
    if (expYear === 'invalid' || (expYear.length !== 2 && expYear.length !== 4) || year * 12 + month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1) {
      return { response: cardError({ code: 'invalid_expiry_year', message: "Your card's expiration year is invalid." }, 'payment_method_data[card][exp_year]'), store: true };
    }
    if (cvc !== undefined && (cvc === 'invalid' || cvc.length < 3 || cvc.length > 4)) return { response: cardError({ code: 'invalid_cvc', message: "Your card's security code is invalid." }, 'payment_method_data[card][cvc]'), store: true };

    const scenario = scenarioFor(number);
    const brand = sandboxBrand(number);
    const last4 = number.lastDigits(4);
    if (scenario.kind === 'decline' && scenario.stripe.code === 'incorrect_number') {
      return { response: cardError(scenario.stripe, 'payment_method_data[card][number]'), store: true };
    }
    const approved = scenario.kind === 'approve';
    const pi: PaymentIntentRecord = {
      id: stripeId('pi'),
      amount,
      currency,
      status: approved ? 'succeeded' : 'requires_payment_method',
      created: Math.floor(now.getTime() / 1000),
      description,
      metadata,
      paymentMethod: stripeId('pm'),
      charge: {
        id: stripeId('ch'),
        status: approved ? 'succeeded' : 'failed',
        authorizationCode: approved ? authCode() : undefined,
        brand,
        last4,
        moto,
        failureCode: approved ? undefined : scenario.stripe.code,
        failureMessage: approved ? undefined : scenario.stripe.message,
      },
      lastPaymentError: null,
    };
    if (scenario.kind === 'decline') {
      pi.lastPaymentError = {
        type: 'card_error',
        code: scenario.stripe.code,
        ...(scenario.stripe.declineCode ? { decline_code: scenario.stripe.declineCode } : {}),
        message: scenario.stripe.message,
        charge: pi.charge.id,
        doc_url: `${DOC}#${scenario.stripe.code}`,
        payment_method: { id: pi.paymentMethod, object: 'payment_method', type: 'card', card: { brand, last4 } },
      };
    }
    this.#intents.set(pi.id, pi);
    book({
      id: pi.id,
      face: 'stripe',
      status: approved ? 'succeeded' : 'declined',
      amount,
      currency,
      brand,
      last4,
      moto,
      reference: description ?? metadata.reference,
      idempotencyKey: key,
      declineCode: scenario.kind === 'decline' ? (scenario.stripe.declineCode ?? scenario.stripe.code) : undefined,
      createdAt: now.toISOString(),
    });
    if (approved) return { response: { status: 200, body: this.#json(pi, expand) }, store: true };
    return { response: err(402, { ...(pi.lastPaymentError ?? {}), payment_intent: this.#json(pi, expand) }), store: true };
  }

  #json(pi: PaymentIntentRecord, expand: readonly string[]): Record<string, unknown> {
    const c = pi.charge;
    const charge = {
      id: c.id,
      object: 'charge',
      amount: pi.amount,
      amount_captured: c.status === 'succeeded' ? pi.amount : 0,
      currency: pi.currency,
      status: c.status,
      paid: c.status === 'succeeded',
      captured: c.status === 'succeeded',
      authorization_code: c.authorizationCode ?? null,
      failure_code: c.failureCode ?? null,
      failure_message: c.failureMessage ?? null,
      outcome: {
        network_status: c.status === 'succeeded' ? 'approved_by_network' : 'declined_by_network',
        type: c.status === 'succeeded' ? 'authorized' : 'issuer_declined',
      },
      payment_intent: pi.id,
      payment_method: pi.paymentMethod,
      payment_method_details: { type: 'card', card: { brand: c.brand, last4: c.last4, moto: c.moto } },
    };
    return {
      id: pi.id,
      object: 'payment_intent',
      amount: pi.amount,
      amount_received: pi.status === 'succeeded' ? pi.amount : 0,
      capture_method: 'automatic',
      confirmation_method: 'automatic',
      created: pi.created,
      currency: pi.currency,
      description: pi.description,
      last_payment_error: pi.lastPaymentError,
      latest_charge: expand.includes('latest_charge') ? charge : c.id,
      livemode: false,
      metadata: pi.metadata,
      payment_method: pi.paymentMethod,
      payment_method_options: { card: { moto: c.moto, request_three_d_secure: 'automatic' } },
      payment_method_types: ['card'],
      status: pi.status,
    };
  }
}
