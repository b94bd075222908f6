import type { GenesysConfig } from '../config/schema.js';
import { currencyExponent, parseMajorAmount } from '../domain/money.js';
import { decodeUuiHeader } from './uui.js';

/**
 * What the INVITE says about the payment (DESIGN.md sections 1 and 6). Every field is optional
 * except the mode, the identification flag and the UUI status: the call layer fills the gaps from
 * the profile. Values that fail validation are left out, never guessed.
 */
export interface CallContext {
  accountId?: string;
  /** Minor units of the currency returned by `currencyForAmount`. */
  amount?: number;
  /** The `cur` field as sent (upper-cased), when it is a known ISO 4217 code. */
  currency?: string;
  reference?: string;
  mode: 'automated' | 'agent';
  agentId?: string;
  /** "+33140000000" or a sip:/sips:/tel: URI (no URI headers). */
  returnNumber?: string;
  language?: 'fr-FR' | 'en-US';
  identified: boolean;
  /** Profile name asked for by the UUI (must exist in the configuration: the caller checks). */
  profile?: string;
  conversationId?: string;
  /** ok: a UUI header was decoded; absent: none; unreadable: present but undecodable. */
  uuiStatus: 'ok' | 'absent' | 'unreadable';
}

/** Header names tried in order; the lookup function is case-insensitive (InboundCall.header). */
export const UUI_HEADERS = ['User-to-User', 'x-User-To-User'] as const;

/** Free-text fields: printable ASCII without spaces at the ends, bounded. */
const TEXT = /^[\x21-\x7E](?:[\x20-\x7E]*[\x21-\x7E])?$/;
const MAX_TEXT = 128;
const PHONE = /^\+?[0-9]{2,32}$/;
/** A SIP/tel URI usable as a REFER target: no spaces, angle brackets, quotes or URI headers. */
const TARGET_URI = /^(?:sips?|tel):[^\s<>"?]{1,200}$/i;
const PROFILE = /^[A-Za-z0-9_-]{1,64}$/;
const CURRENCY = /^[A-Za-z]{3}$/;
const CONVERSATION = /^[A-Za-z0-9._:-]{1,128}$/;

function text(v: string | undefined): string | undefined {
  return v !== undefined && v.length <= MAX_TEXT && TEXT.test(v) ? v : undefined;
}

function parseIdentified(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'y'].includes(s)) return true;
  if (['0', 'false', 'no', 'n'].includes(s)) return false;
  return undefined;
}

function parseMode(v: string | undefined): 'automated' | 'agent' | undefined {
  const s = v?.trim().toLowerCase();
  return s === 'agent' || s === 'automated' ? s : undefined;
}

function parseLanguage(v: string | undefined): 'fr-FR' | 'en-US' | undefined {
  const s = v?.trim().toLowerCase().replace('_', '-');
  if (s === 'fr-fr' || s === 'fr') return 'fr-FR';
  if (s === 'en-us' || s === 'en') return 'en-US';
  return undefined;
}

function parseReturn(v: string | undefined): string | undefined {
  const s = v?.trim();
  if (s === undefined) return undefined;
  return PHONE.test(s) || TARGET_URI.test(s) ? s : undefined;
}

/**
 * Splits "k=v|k=v" (configured separators) into a map with lower-cased keys. The first occurrence
 * of a key wins; fields without the key/value separator are ignored.
 */
export function parseUuiFields(data: string, cfg: Pick<GenesysConfig, 'fieldSeparator' | 'keyValueSeparator'>): Map<string, string> {
  const out = new Map<string, string>();
  for (const field of data.split(cfg.fieldSeparator)) {
    const at = field.indexOf(cfg.keyValueSeparator);
    if (at <= 0) continue;
    const key = field.slice(0, at).trim().toLowerCase();
    const value = field.slice(at + 1).trim();
    if (key !== '' && !out.has(key)) out.set(key, value);
  }
  return out;
}

/**
 * Reads the call context from the INVITE headers: the first readable UUI header among
 * User-to-User and x-User-To-User, in the `key=value|...` format with the configured key names
 * (matched case-insensitively), and the conversation-id header. `currencyForAmount` gets the UUI
 * currency (undefined when absent or unknown) and returns the currency the `amt` field is read in
 * (normally the profile currency when the UUI gives none). Never throws.
 */
export function extractContext(
  headerLookup: (name: string) => string | undefined,
  cfg: GenesysConfig,
  currencyForAmount: (ctxCurrency: string | undefined) => string,
): CallContext {
  const ctx: CallContext = { mode: 'automated', identified: true, uuiStatus: 'absent' };
  const safeLookup = (name: string): string | undefined => {
    try {
      const v = headerLookup(name);
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  };

  const conv = safeLookup(cfg.conversationHeader)?.trim();
  if (conv !== undefined && CONVERSATION.test(conv)) ctx.conversationId = conv;

  let data: string | undefined;
  for (const name of UUI_HEADERS) {
    const raw = safeLookup(name);
    if (raw === undefined) continue;
    const decoded = decodeUuiHeader(raw);
    if (decoded !== undefined) {
      data = decoded.data;
      break;
    }
    ctx.uuiStatus = 'unreadable';
  }
  if (data === undefined) return ctx;
  ctx.uuiStatus = 'ok';

  const fields = parseUuiFields(data, cfg);
  const get = (key: string): string | undefined => fields.get(key.toLowerCase());
  const k = cfg.keys;

  const accountId = text(get(k.account));
  if (accountId !== undefined) ctx.accountId = accountId;
  const reference = text(get(k.reference));
  if (reference !== undefined) ctx.reference = reference;
  const agentId = text(get(k.agent));
  if (agentId !== undefined) ctx.agentId = agentId;

  const cur = get(k.currency)?.trim();
  if (cur !== undefined && CURRENCY.test(cur) && currencyExponent(cur.toUpperCase()) !== undefined) {
    ctx.currency = cur.toUpperCase();
  }
  const amt = get(k.amount)?.trim();
  if (amt !== undefined) {
    let amountCurrency: string | undefined;
    try {
      amountCurrency = currencyForAmount(ctx.currency);
    } catch {
      amountCurrency = undefined;
    }
    const minor = amountCurrency === undefined ? undefined : parseMajorAmount(amt, amountCurrency);
    if (minor !== undefined) ctx.amount = minor;
  }

  const mode = parseMode(get(k.mode));
  if (mode !== undefined) ctx.mode = mode;
  const ret = parseReturn(get(k.returnNumber));
  if (ret !== undefined) ctx.returnNumber = ret;
  const language = parseLanguage(get(k.language));
  if (language !== undefined) ctx.language = language;
  const identified = parseIdentified(get(k.identified));
  if (identified !== undefined) ctx.identified = identified;
  const profile = get(k.profile)?.trim();
  if (profile !== undefined && PROFILE.test(profile)) ctx.profile = profile;
  return ctx;
}
