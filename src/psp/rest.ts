import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../log.js';
import type { PspConfig } from '../config/schema.js';
import { PayIvrError } from '../errors.js';
import { formatMajor } from '../domain/money.js';
import type { ChargeRequest, LookupKey } from './types.js';
import type { ChargeOutcome } from '../domain/charge.js';
import type { PspAdapter, PspCapabilities } from './adapter.js';
import { PspError, httpStatusError, parseRetryAfter } from './errors.js';
import { PspHttpClient } from './http.js';
import { CardJsonBody } from './card-body.js';
import { isDeclineClass } from './decline-codes.js';
import { sanitizePspBody } from './sanitize.js';
import type { DeclineClass } from '../domain/outcome.js';

export type RestPspConfig = Extract<PspConfig, { type: 'rest' }>;

interface RestGatewayOptions {
  config: RestPspConfig;
  /** Value of the auth header (from authEnv/authFile); never logged. */
  authValue: string | undefined;
  logger: Logger;
  name?: string;
  /** Config path for error messages, e.g. "profiles.default.psp". */
  configPath?: string;
}

const CARD_FIELDS = ['pan', 'expMonth', 'expYear', 'expYear2', 'expiry', 'cvc'] as const;
const PLAIN_FIELDS = ['amount', 'amountMajor', 'currency', 'currencyLower', 'reference', 'idempotencyKey'] as const;
type CardField = (typeof CARD_FIELDS)[number];
const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;
const EXACT = /^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$/;

function isKnownPlaceholder(name: string): boolean {
  return (CARD_FIELDS as readonly string[]).includes(name) || (PLAIN_FIELDS as readonly string[]).includes(name) || /^metadata\.[A-Za-z0-9_-]+$/.test(name);
}

/** Every placeholder name in a template (keys are never templated). */
function placeholders(v: unknown, out: Set<string> = new Set()): Set<string> {
  if (typeof v === 'string') for (const m of v.matchAll(PLACEHOLDER)) out.add(m[1] as string);
  else if (Array.isArray(v)) for (const x of v) placeholders(x, out);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) placeholders(x, out);
  return out;
}

/** Value at a dotted path (`data.items.0.id`) of parsed JSON. */
function getPath(v: unknown, path: string): unknown {
  let cur: unknown = v;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function scalar(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

/**
 * Generic REST adapter for a merchant's own gateway or CRM, entirely from the profile: URL, auth
 * header, a JSON body template with `{{placeholders}}`, and where the answer says approved, the
 * transaction id and the decline code. Card placeholders are filled straight into the body bytes
 * (never JS strings) and the body is zeroed after the send.
 *
 * Placeholders: amount (number, minor units), amountMajor ("49.90"), currency, currencyLower,
 * reference, idempotencyKey, metadata.<key>, and the card fields pan, expMonth ("MM"),
 * expYear ("YYYY"), expYear2 ("YY"), expiry ("MMYY"), cvc (a value that is exactly one
 * placeholder of an absent security code drops its key). `lookupUrl` may use
 * {{idempotencyKey}} and {{transactionId}}.
 */
export class RestGateway implements PspAdapter {
  readonly name: string;
  readonly capabilities: PspCapabilities;
  readonly #cfg: RestPspConfig;
  readonly #auth: string | undefined;
  readonly #logger: Logger;
  readonly #http = new PspHttpClient();
  readonly #declineMap: ReadonlyMap<string, DeclineClass>;

  constructor(opts: RestGatewayOptions) {
    const cfg = opts.config;
    const where = opts.configPath ?? 'psp';
    this.name = opts.name ?? 'rest';
    this.#cfg = cfg;
    this.#auth = opts.authValue;
    this.#logger = opts.logger;
    const unknown = [...placeholders(cfg.bodyTemplate)].filter((n) => !isKnownPlaceholder(n));
    if (unknown.length > 0) throw new PayIvrError('ERR_PSP_CONFIG', `${where}.bodyTemplate: unknown placeholder(s) ${unknown.map((n) => `{{${n}}}`).join(', ')}`);
    const lookupNames = cfg.lookupUrl ? [...decodeURI(cfg.lookupUrl).matchAll(PLACEHOLDER)].map((m) => m[1] as string) : [];
    const badLookup = lookupNames.filter((n) => n !== 'idempotencyKey' && n !== 'transactionId');
    if (badLookup.length > 0) throw new PayIvrError('ERR_PSP_CONFIG', `${where}.lookupUrl: only {{idempotencyKey}} and {{transactionId}} are allowed`);
    const map = new Map<string, DeclineClass>();
    for (const [code, cls] of Object.entries(cfg.response.declineMap)) {
      if (!isDeclineClass(cls)) throw new PayIvrError('ERR_PSP_CONFIG', `${where}.response.declineMap.${code}: "${cls}" is not a decline class`);
      map.set(code, cls);
    }
    this.#declineMap = map;
    this.capabilities = {
      idempotentReplay: cfg.idempotent,
      lookupByKey: lookupNames.includes('idempotencyKey'),
      lookupById: lookupNames.includes('transactionId'),
    };
  }

  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    const b = new CardJsonBody();
    const body = b.toBuffer(this.#fill(this.#cfg.bodyTemplate, req, b));
    let res;
    try {
      res = await this.#http.send({ method: 'POST', url: new URL(this.#cfg.url), headers: this.#headers(req.idempotencyKey, true), body, timeoutMs: this.#cfg.timeoutMs, signal });
    } finally {
      body.fill(0);
    }
    const out = this.#outcome(res.status, res.text, res.headers);
    if (out === undefined) throw new PspError('protocol', `gateway answered HTTP ${res.status} without a usable result`, { status: res.status, maybeExecuted: true });
    return out;
  }

  async lookup(key: LookupKey, signal?: AbortSignal): Promise<ChargeOutcome | undefined> {
    const tpl = this.#cfg.lookupUrl;
    if (!tpl) return undefined;
    const needsKey = this.capabilities.lookupByKey;
    const needsId = this.capabilities.lookupById;
    if ((needsKey && !key.idempotencyKey) || (needsId && !key.transactionId) || (!needsKey && !needsId)) return undefined;
    const url = tpl
      .replace(/\{\{\s*idempotencyKey\s*\}\}/g, encodeURIComponent(key.idempotencyKey ?? ''))
      .replace(/\{\{\s*transactionId\s*\}\}/g, encodeURIComponent(key.transactionId ?? ''));
    const res = await this.#http.send({ method: 'GET', url: new URL(url), headers: this.#headers(key.idempotencyKey, false), timeoutMs: this.#cfg.timeoutMs, signal });
    if (res.status === 404) return undefined;
    return this.#outcome(res.status, res.text, res.headers);
  }

  #headers(idempotencyKey: string | undefined, withBody: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (withBody) h['content-type'] = 'application/json';
    if (this.#auth !== undefined) h[this.#cfg.authHeader.toLowerCase()] = this.#auth;
    if (idempotencyKey) h[this.#cfg.idempotencyHeader.toLowerCase()] = idempotencyKey;
    return h;
  }

  /** Deep copy of the template with values filled in; card fields become body placeholders. */
  #fill(v: unknown, req: ChargeRequest, b: CardJsonBody): unknown {
    if (typeof v === 'string') {
      const exact = EXACT.exec(v);
      if (exact) return this.#value(exact[1] as string, req, b, true);
      return v.replace(PLACEHOLDER, (_m, name: string) => {
        const x = this.#value(name, req, b, false);
        return x === undefined ? '' : String(x);
      });
    }
    if (Array.isArray(v)) return v.map((x) => this.#fill(x, req, b));
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.#fill(x, req, b);
      return out;
    }
    return v;
  }

  #value(name: string, req: ChargeRequest, b: CardJsonBody, typed: boolean): string | number | undefined {
    const { card } = req;
    switch (name as CardField | (typeof PLAIN_FIELDS)[number]) {
      case 'amount':
        return typed ? req.amount : String(req.amount);
      case 'amountMajor':
        return formatMajor(req.amount, req.currency.toUpperCase());
      case 'currency':
        return req.currency.toUpperCase();
      case 'currencyLower':
        return req.currency.toLowerCase();
      case 'reference':
        return req.reference;
      case 'idempotencyKey':
        return req.idempotencyKey;
      case 'pan':
        return b.digits(card.pan);
      case 'expMonth':
        return b.digits(card.expiry, 0, 2);
      case 'expYear':
        return b.digits(card.expiry, 2, 4, '20');
      case 'expYear2':
        return b.digits(card.expiry, 2, 4);
      case 'expiry':
        return b.digits(card.expiry, 0, 4);
      case 'cvc':
        return card.securityCode && card.securityCode.length > 0 ? b.digits(card.securityCode) : undefined;
    }
    if (name.startsWith('metadata.')) return req.metadata[name.slice('metadata.'.length)] ?? (typed ? undefined : '');
    return undefined;
  }

  /** Maps an answer; undefined when a 2xx body says neither approved nor declined. */
  #outcome(status: number, text: string, headers: IncomingHttpHeaders): ChargeOutcome | undefined {
    let json: unknown;
    try {
      json = JSON.parse(text) as unknown;
    } catch {
      json = undefined;
    }
    const r = this.#cfg.response;
    const mapped = json === undefined ? undefined : this.#map(json);
    if (status >= 200 && status < 300) {
      if (json === undefined) throw new PspError('protocol', `gateway answered HTTP ${status} with a body that is not JSON`, { status, maybeExecuted: true });
      if (mapped === undefined) {
        this.#logger.warn({ gateway: this.name, status, statusValue: scalar(getPath(json, r.statusPath))?.slice(0, 40), body: sanitizePspBody(json) }, 'gateway answer neither approved nor declined');
      }
      return mapped ?? { status: 'unknown', reason: 'rest-unrecognised-status' };
    }
    // A 4xx that carries a decline (402 with a decline code) is a decline, not an error.
    if (status >= 400 && status < 500 && status !== 409 && status !== 429 && mapped?.status === 'declined') return mapped;
    this.#logger.warn({ gateway: this.name, status, body: sanitizePspBody(text) }, 'gateway error answer');
    throw httpStatusError(status, parseRetryAfter(headers['retry-after']));
  }

  #map(json: unknown): ChargeOutcome | undefined {
    const r = this.#cfg.response;
    const st = scalar(getPath(json, r.statusPath));
    const txn = scalar(getPath(json, r.transactionIdPath));
    if (st !== undefined && r.approvedValues.includes(st)) {
      if (!txn) throw new PspError('protocol', `approved answer without ${r.transactionIdPath}`, { maybeExecuted: true });
      return { status: 'approved', transactionId: txn, authCode: r.authCodePath ? scalar(getPath(json, r.authCodePath)) : undefined };
    }
    const code = r.declineCodePath ? scalar(getPath(json, r.declineCodePath)) : undefined;
    if ((st !== undefined && r.declinedValues.includes(st)) || code !== undefined) {
      return { status: 'declined', declineClass: (code !== undefined ? this.#declineMap.get(code) : undefined) ?? 'do-not-honor', pspCode: code?.slice(0, 64), transactionId: txn };
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}
