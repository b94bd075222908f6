import type { Face, FaceRequest, FaceResponse, FaceResult, LedgerEntry } from './types.js';
import { ADYEN_HOLDER_NAME_TRIGGERS, sandboxBrand, scenarioFor, type AdyenRefusal } from './cards.js';
import { authCode, pspReference } from './ids.js';
import { fieldNumber, takeJsonCardFields, wipeTaken, type TakenField } from './card-fields.js';

/**
 * The Adyen face: the subset of Checkout `POST /v{N}/payments` the Adyen adapter uses, with
 * Adyen's wire format (JSON, `X-API-Key`, amount in minor units, `resultCode` /
 * `refusalReason` / `refusalReasonCode` / `pspReference`, errors as
 * `{ status, errorCode, message, errorType }`), idempotency (the first answer is returned for a
 * reused key; a key still in flight is refused with `Transient-Error: true`), and Adyen's
 * documented `holderName` test triggers.
 */

const PAYMENTS_PATH = /^(?:\/checkout)?\/v\d{2}\/payments$/;
/** Taken out of the JSON body as digits before parsing (card-fields.ts). */
const ADYEN_CARD_KEYS: ReadonlySet<string> = new Set(['number', 'expiryMonth', 'expiryYear', 'cvc']);

function adyenError(status: number, errorCode: string, message: string, errorType: string, headers?: Record<string, string>): FaceResponse {
  return { status, body: { status, errorCode, message, errorType }, ...(headers ? { headers } : {}) };
}

function validation(errorCode: string, message: string): FaceResult {
  return { response: adyenError(422, errorCode, message, 'validation'), store: false };
}

interface Json {
  [k: string]: unknown;
}

function obj(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

interface AdyenFaceOptions {
  /** Accepted API keys; empty = any non-empty key. */
  keys: readonly string[];
  now: () => Date;
}

export class AdyenFace implements Face {
  readonly name = 'adyen' as const;
  readonly strictKeyReuse = false;
  readonly #opts: AdyenFaceOptions;

  constructor(opts: AdyenFaceOptions) {
    this.#opts = opts;
  }

  matches(path: string): boolean {
    return /^(?:\/checkout)?\/v\d{2}\//.test(path);
  }

  #apiKey(req: FaceRequest): string | undefined {
    const h = req.headers['x-api-key'];
    const v = Array.isArray(h) ? h[0] : h;
    return v === undefined || v === '' ? undefined : v;
  }

  authenticate(req: FaceRequest): FaceResponse | undefined {
    const key = this.#apiKey(req);
    const ok = key !== undefined && (this.#opts.keys.length === 0 || this.#opts.keys.includes(key));
    return ok ? undefined : adyenError(401, '000', 'HTTP Status Response - Unauthorized', 'security');
  }

  idempotencyKey(req: FaceRequest): { key: string | undefined; error?: FaceResponse } {
    const h = req.headers['idempotency-key'];
    const key = Array.isArray(h) ? h[0] : h;
    if (key === undefined || key === '') return { key: undefined };
    if (key.length > 64) return { key: undefined, error: adyenError(422, '000', 'Idempotency-Key must be at most 64 characters', 'validation') };
    return { key };
  }

  keyScope(req: FaceRequest): string {
    return `adyen:${this.#apiKey(req) ?? ''}`;
  }

  keyMismatch(): FaceResponse {
    return adyenError(422, '000', 'Idempotency key reused', 'validation');
  }

  inFlight(): FaceResponse {
    return adyenError(422, '704', 'request already processed or in progress', 'validation', { 'transient-error': 'true' });
  }

  injected(status: number): FaceResponse {
    if (status === 429) return adyenError(429, '000', 'Too Many Requests', 'validation');
    if (status >= 500) return adyenError(status, '000', 'Internal error (sandbox fault)', 'internal');
    return adyenError(status, '000', `Sandbox fault: HTTP ${status}`, 'validation');
  }

  replayHeaders(): Record<string, string> {
    return {};
  }

  reset(): void {}

  handle(req: FaceRequest, book: (e: LedgerEntry) => void): FaceResult {
    if (req.method !== 'POST' || !PAYMENTS_PATH.test(req.path)) {
      return { response: adyenError(404, '000', `No endpoint ${req.method} ${req.path} in the sandbox`, 'validation'), store: false };
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) return validation('702', 'Request body must be application/json');
    const taken = takeJsonCardFields(req.body, ADYEN_CARD_KEYS);
    try {
      return this.#pay(req, taken.text, taken.fields, book);
    } finally {
      wipeTaken(taken);
    }
  }

  #pay(req: FaceRequest, text: string, cardFields: ReadonlyMap<string, TakenField>, book: (e: LedgerEntry) => void): FaceResult {
    let body: Json | undefined;
    try {
      body = obj(JSON.parse(text));
    } catch {
      body = undefined;
    }
    if (!body) return { response: adyenError(400, '702', 'Unable to parse the request body as a JSON object', 'validation'), store: false };

    if (!str(body.merchantAccount)) return { response: adyenError(422, '901', 'Invalid Merchant Account', 'security'), store: false };
    const amount = obj(body.amount);
    const value = amount?.value;
    const currency = str(amount?.currency);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || !currency || !/^[A-Z]{3}$/.test(currency)) return validation('137', 'Invalid amount specified');
    const reference = str(body.reference);
    if (!reference) return validation('130', "Required field 'reference' is not provided.");
    const pm = obj(body.paymentMethod);
    if (!pm || pm.type !== 'scheme') return validation('702', "The sandbox supports paymentMethod.type 'scheme' only");
    // The card values were taken out of the body as digits (card-fields.ts); pm holds 'X' masks.
    const number = cardFields.get('number');
    const expiryMonth = cardFields.get('expiryMonth');
    const expiryYear = cardFields.get('expiryYear');
    const cvc = cardFields.get('cvc');
    const holderName = str(pm.holderName);
    if (number === undefined || number === 'invalid' || number.length < 12 || number.length > 19) return validation('101', 'Invalid card number');
    const scenario = scenarioFor(number);
    if (scenario.kind === 'decline' && scenario.adyen.refusalReasonCode === '8') return validation('101', 'Invalid card number');
    const month = fieldNumber(expiryMonth);
    const year = fieldNumber(expiryYear);
    if (expiryMonth === 'invalid' || expiryMonth === undefined || expiryMonth.length > 2 || !(month >= 1 && month <= 12) || expiryYear === 'invalid' || expiryYear?.length !== 4) return validation('129', 'Expiry Date Invalid');
    if (cvc !== undefined && (cvc === 'invalid' || cvc.length < 3 || cvc.length > 4)) return validation('103', 'CVC is not the right length');

    const now = this.#opts.now();
    const expired = year * 12 + month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1;
    const trigger = holderName !== undefined ? ADYEN_HOLDER_NAME_TRIGGERS.get(holderName) : undefined;
    let result: AdyenRefusal | 'Authorised' | 'Received';
    if (trigger !== undefined) result = trigger;
    else if (expired) result = { resultCode: 'Refused', refusalReasonCode: '6', refusalReason: 'Expired Card' };
    else result = scenario.kind === 'approve' ? 'Authorised' : scenario.adyen;

    const ref = pspReference();
    const brand = sandboxBrand(number);
    const last4 = number.lastDigits(4);
    const moto = body.shopperInteraction === 'Moto';
    const idem = this.idempotencyKey(req).key;
    book({
      id: ref,
      face: 'adyen',
      status: result === 'Authorised' ? 'succeeded' : result === 'Received' ? 'pending' : 'declined',
      amount: value,
      currency,
      brand,
      last4,
      moto,
      reference,
      idempotencyKey: idem,
      declineCode: typeof result === 'object' ? result.refusalReasonCode : undefined,
      createdAt: now.toISOString(),
    });
    const common = { pspReference: ref, amount: { currency, value }, merchantReference: reference, paymentMethod: { brand, type: 'scheme' } };
    let answer: Json;
    if (result === 'Authorised') answer = { additionalData: { authCode: authCode(), cardSummary: last4 }, ...common, resultCode: 'Authorised' };
    else if (result === 'Received') answer = { ...common, resultCode: 'Received' };
    else answer = { ...common, resultCode: result.resultCode, refusalReason: result.refusalReason, refusalReasonCode: result.refusalReasonCode };
    return { response: { status: 200, headers: { pspreference: ref }, body: answer }, store: true };
  }
}
