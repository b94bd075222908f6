import type { GenesysConfig } from '../config/schema.js';
import { currencyExponent } from '../domain/money.js';
import type { ContextProblem } from '../domain/outcome.js';
import { parseEntryMode, type EntryMode } from '../domain/entry.js';
import { decodeUuiHeader } from './uui.js';

/** A context field that was rejected. The value is never kept when it could be card data. */
export interface RejectedField {
  /** The key as configured (genesys.keys.*), or the header name for an unreadable UUI. */
  key: string;
  problem: ContextProblem;
  /** The value as sent, only when it has fewer than 6 digits (see `showableValue`). */
  shown?: string;
  /** Length of the value as sent. */
  length: number;
}

/**
 * What the INVITE says about the payment. Every field is optional
 * except the mode, the identification flag, the UUI status and the rejected fields: the call layer
 * fills the gaps from the profile. A key sent twice, or a value that does not parse, is rejected
 * (listed in `rejected`, never guessed); whether the call goes on without it is the profile's
 * choice (onBadContext).
 */
export interface CallContext {
  accountId?: string;
  /**
   * The `amt` field as sent, checked for shape only (digits with an optional '.' part): its
   * value in minor units depends on the currency of the charge (resolveContextAmount).
   */
  amountText?: string;
  /** The `cur` field upper-cased, when it is a known ISO 4217 code. */
  currency?: string;
  reference?: string;
  mode: 'automated' | 'agent';
  agentId?: string;
  /** The `ret` field as sent: only resolveReturnTarget turns it into a target, if it is allowed. */
  returnNumber?: string;
  language?: 'fr-FR' | 'en-US';
  /** Missing `ident` means identified; a rejected one means not identified (fail closed). */
  identified: boolean;
  /** `entry=`: how pay-ivr entered the conversation (conference leg or transfer); absent = the profile's. */
  entry?: EntryMode;
  /** Profile name asked for by the UUI (must exist in the configuration: the caller checks). */
  profile?: string;
  conversationId?: string;
  /** ok: a UUI header was decoded; absent: none; unreadable: present but undecodable. */
  uuiStatus: 'ok' | 'absent' | 'unreadable';
  rejected: RejectedField[];
}

/** Header names tried in order; the lookup function is case-insensitive (InboundCall.header). */
const UUI_HEADERS = ['User-to-User', 'x-User-To-User'] as const;

/** Free-text fields: printable ASCII without spaces at the ends, bounded, no card-like digit run. */
const TEXT = /^[\x21-\x7E](?:[\x20-\x7E]*[\x21-\x7E])?$/;
const MAX_TEXT = 128;
/** Major units: digits, optionally '.' and digits. No sign, exponent, comma, space or hex. */
const AMOUNT = /^[0-9]{1,64}(?:\.[0-9]{1,64})?$/;
const PROFILE = /^[A-Za-z0-9_-]{1,64}$/;
const CURRENCY = /^[A-Za-z]{3}$/;
const CONVERSATION = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_RETURN = 256;
/** A value with this many digits could be a card number (or part of one): never shown. */
const CARD_LIKE_DIGITS = 6;
const MAX_SHOWN = 48;

/**
 * The value of a rejected field as it may appear in a log line: undefined when it holds 6 digits
 * or more (it could be card data), otherwise printable ASCII with anything else as '?', cut at
 * 48 characters (a log display, never a value that is used).
 */
function showableValue(value: string): string | undefined {
  if ((value.match(/[0-9]/g)?.length ?? 0) >= CARD_LIKE_DIGITS) return undefined;
  // Non-ASCII digits (Arabic-Indic, full-width...) count as digits too.
  if ((value.match(/\p{Nd}/gu)?.length ?? 0) >= CARD_LIKE_DIGITS) return undefined;
  const printable = value.replace(/[^\x20-\x7E]/g, '?');
  return printable.length > MAX_SHOWN ? `${printable.slice(0, MAX_SHOWN)}...` : printable;
}

export function rejectedField(key: string, problem: ContextProblem, value: string): RejectedField {
  const r: RejectedField = { key, problem, length: value.length };
  const shown = showableValue(value);
  if (shown !== undefined) r.shown = shown;
  return r;
}

/** 13 digits in a row could be a card number: such a text is refused (the store would refuse the result). */
const CARD_DIGIT_RUN = /[0-9]{13,}/;

function text(v: string): string | undefined {
  return v.length <= MAX_TEXT && TEXT.test(v) && !CARD_DIGIT_RUN.test(v) ? v : undefined;
}

function parseIdentified(v: string): boolean | undefined {
  const s = v.toLowerCase();
  if (['1', 'true', 'yes', 'y'].includes(s)) return true;
  if (['0', 'false', 'no', 'n'].includes(s)) return false;
  return undefined;
}

function parseMode(v: string): 'automated' | 'agent' | undefined {
  const s = v.toLowerCase();
  return s === 'agent' || s === 'automated' ? s : undefined;
}

function parseLanguage(v: string): 'fr-FR' | 'en-US' | undefined {
  const s = v.toLowerCase().replace('_', '-');
  if (s === 'fr-fr' || s === 'fr') return 'fr-FR';
  if (s === 'en-us' || s === 'en') return 'en-US';
  return undefined;
}

interface UuiFields {
  /** Lower-cased key -> value as sent, for keys that appear exactly once. */
  values: Map<string, string>;
  /** Lower-cased keys that appear more than once. */
  duplicates: Set<string>;
}

/**
 * Splits "k=v|k=v" (configured separators). Keys are trimmed and lower-cased, values are kept as
 * sent. A key that appears twice or more is in `duplicates` and in none of the values: no copy
 * wins. A field without the key/value separator is a key with an empty value; an empty key is
 * ignored.
 */
function parseUuiFields(data: string, cfg: Pick<GenesysConfig, 'fieldSeparator' | 'keyValueSeparator'>): UuiFields {
  const values = new Map<string, string>();
  const duplicates = new Set<string>();
  for (const field of data.split(cfg.fieldSeparator)) {
    const at = field.indexOf(cfg.keyValueSeparator);
    const key = (at < 0 ? field : field.slice(0, at)).trim().toLowerCase();
    const value = at < 0 ? '' : field.slice(at + 1);
    if (key === '') continue;
    if (values.has(key) || duplicates.has(key)) {
      values.delete(key);
      duplicates.add(key);
    } else {
      values.set(key, value);
    }
  }
  return { values, duplicates };
}

/**
 * Reads the call context from the INVITE headers: the first readable UUI header among
 * User-to-User and x-User-To-User, in the `key=value|...` format with the configured key names
 * (matched case-insensitively), and the conversation-id header. Each configured key is checked
 * strictly; a rejected one is listed in `rejected` with the configured key name. Never throws.
 */
export function extractContext(headerLookup: (name: string) => string | undefined, cfg: GenesysConfig): CallContext {
  const ctx: CallContext = { mode: 'automated', identified: true, uuiStatus: 'absent', rejected: [] };
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
  let unreadable: string | undefined;
  for (const name of UUI_HEADERS) {
    const raw = safeLookup(name);
    if (raw === undefined) continue;
    const decoded = decodeUuiHeader(raw);
    if (decoded !== undefined) {
      data = decoded.data;
      break;
    }
    unreadable ??= name;
    ctx.uuiStatus = 'unreadable';
  }
  if (data === undefined) {
    // The raw header is not looked at again: it may hold anything.
    if (unreadable !== undefined) ctx.rejected.push({ key: unreadable, problem: 'unreadable', length: 0 });
    return ctx;
  }
  ctx.uuiStatus = 'ok';

  const fields = parseUuiFields(data, cfg);
  const k = cfg.keys;
  /** The value of a configured key sent once; a duplicate is rejected here, once per key. */
  const get = (key: string): string | undefined => {
    const lower = key.toLowerCase();
    if (fields.duplicates.has(lower)) {
      ctx.rejected.push({ key, problem: 'duplicate-key', length: 0 });
      return undefined;
    }
    return fields.values.get(lower);
  };
  const reject = (key: string, problem: ContextProblem, value: string): void => {
    ctx.rejected.push(rejectedField(key, problem, value));
  };
  const textField = (key: string, set: (v: string) => void): void => {
    const v = get(key);
    if (v === undefined) return;
    const t = text(v);
    if (t === undefined) reject(key, 'bad-field', v);
    else set(t);
  };

  textField(k.account, (v) => (ctx.accountId = v));
  textField(k.reference, (v) => (ctx.reference = v));
  textField(k.agent, (v) => (ctx.agentId = v));

  const cur = get(k.currency);
  if (cur !== undefined) {
    if (CURRENCY.test(cur) && currencyExponent(cur.toUpperCase()) !== undefined) ctx.currency = cur.toUpperCase();
    else reject(k.currency, 'bad-currency', cur);
  }
  const amt = get(k.amount);
  if (amt !== undefined) {
    if (AMOUNT.test(amt)) ctx.amountText = amt;
    else reject(k.amount, 'bad-amount', amt);
  }

  const modeText = get(k.mode);
  if (modeText !== undefined) {
    const mode = parseMode(modeText);
    if (mode !== undefined) ctx.mode = mode;
    else reject(k.mode, 'bad-field', modeText);
  }
  const ret = get(k.returnNumber);
  if (ret !== undefined) {
    // Checked against the profile's allowed targets later; only the shape is bounded here.
    if (ret.length > 0 && ret.length <= MAX_RETURN) ctx.returnNumber = ret;
    else reject(k.returnNumber, 'return-refused', ret);
  }
  const langText = get(k.language);
  if (langText !== undefined) {
    const language = parseLanguage(langText);
    if (language !== undefined) ctx.language = language;
    else reject(k.language, 'bad-field', langText);
  }
  const identText = get(k.identified);
  const identified = identText === undefined ? undefined : parseIdentified(identText);
  if (identified !== undefined) ctx.identified = identified;
  else if (identText !== undefined || fields.duplicates.has(k.identified.toLowerCase())) {
    // Sent but unusable (or sent twice): never assume the caller was identified.
    ctx.identified = false;
    if (identText !== undefined) reject(k.identified, 'bad-field', identText);
  }
  const entryText = get(k.entry);
  if (entryText !== undefined) {
    const entry = parseEntryMode(entryText);
    if (entry !== undefined) ctx.entry = entry;
    else reject(k.entry, 'bad-field', entryText);
  }
  const profile = get(k.profile);
  if (profile !== undefined) {
    if (PROFILE.test(profile)) ctx.profile = profile;
    else reject(k.profile, 'bad-field', profile);
  }
  return ctx;
}
