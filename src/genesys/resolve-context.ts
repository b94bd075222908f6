import type { GenesysConfig, Profile } from '../config/schema.js';
import { currencyExponent, MAX_MAJOR } from '../domain/money.js';
import { CONTEXT_PROBLEMS, type ContextProblem } from '../domain/outcome.js';
import { resolveEntryMode, type EntryMode } from '../domain/entry.js';
import { rejectedField, type CallContext, type RejectedField } from './context.js';
import { resolveReturnTarget, type AllowedReturnTarget } from './return-target.js';

/**
 * The context read against the selected profile: which currency the charge is in (and its
 * bounds), the amount due in its minor units, the hand-back target `ret=` picked (if allowed),
 * and every rejected field. Pure: the call layer logs the rejections and applies onBadContext.
 */
export interface ResolvedContext {
  /** Currency of the charge: the context's when the profile accepts it, else the profile's. */
  currency: string;
  /** Bounds of the charge in minor units of `currency`. */
  minAmount: number;
  maxAmount: number;
  /** The amount due, minor units of `currency`; undefined when absent or rejected. */
  amount?: number;
  /** How pay-ivr entered the conversation: the context's `entry=`, else the profile's setting. */
  entry: EntryMode;
  /** The return target `ret=` picked, when it is an allowed one. */
  returnTarget?: AllowedReturnTarget;
  /** Every rejected field: the context's own plus the ones found against the profile. */
  rejected: RejectedField[];
  /**
   * The reason code when the context is bad (the first rejected field in CONTEXT_PROBLEMS order;
   * `return-refused` alone is not: the configured target is used instead).
   */
  badContext?: ContextProblem;
}

const AMOUNT = /^([0-9]+)(?:\.([0-9]+))?$/;

/** Major-unit text (shape already checked) -> minor units, or the problem with it. */
function toMinor(text: string, currency: string): { minor: number } | { problem: 'bad-amount' } {
  const exponent = currencyExponent(currency);
  const m = AMOUNT.exec(text);
  if (exponent === undefined || m === null) return { problem: 'bad-amount' };
  const int = (m[1] ?? '').replace(/^0+(?=.)/, '');
  const frac = m[2] ?? '';
  // More decimals than the currency has (49.999 EUR, 15.0 JPY) is not rounded: it is refused.
  if (frac.length > exponent || int.length > String(MAX_MAJOR).length || Number(int) > MAX_MAJOR) return { problem: 'bad-amount' };
  const minor = Number(int + frac.padEnd(exponent, '0'));
  return minor > 0 ? { minor } : { problem: 'bad-amount' };
}

export function resolveContext(
  ctx: CallContext,
  selected: { name: string; profile: Profile },
  keys: GenesysConfig['keys'],
): ResolvedContext {
  const { profile } = selected;
  const rejected = [...ctx.rejected];
  const out: ResolvedContext = { currency: profile.currency, minAmount: profile.minAmount, maxAmount: profile.maxAmount, entry: resolveEntryMode(profile.entry, ctx.entry), rejected };

  // A profile the context names but the configuration lacks: the called number chose instead.
  if (ctx.profile !== undefined && ctx.profile !== selected.name) rejected.push(rejectedField(keys.profile, 'bad-field', ctx.profile));

  let currencyOk = true;
  if (ctx.currency !== undefined && ctx.currency !== profile.currency) {
    const accepted = profile.acceptedCurrencies[ctx.currency];
    if (accepted === undefined) {
      currencyOk = false;
      rejected.push(rejectedField(keys.currency, 'currency-not-accepted', ctx.currency));
    } else {
      out.currency = ctx.currency;
      out.minAmount = accepted.minAmount;
      out.maxAmount = accepted.maxAmount;
    }
  }
  // A rejected currency rejects the amount with it (it was meant in that currency), said as such.
  const currencyProblem = currencyOk ? rejected.find((r) => r.key === keys.currency)?.problem : 'currency-not-accepted';
  if (ctx.amountText !== undefined && currencyProblem !== undefined) {
    rejected.push(rejectedField(keys.amount, currencyProblem, ctx.amountText));
  } else if (ctx.amountText !== undefined) {
    const r = toMinor(ctx.amountText, out.currency);
    if ('problem' in r) rejected.push(rejectedField(keys.amount, r.problem, ctx.amountText));
    else if (r.minor < Math.max(out.minAmount, 1) || r.minor > out.maxAmount) rejected.push(rejectedField(keys.amount, 'amount-out-of-range', ctx.amountText));
    else out.amount = r.minor;
  }

  if (ctx.returnNumber !== undefined) {
    const d = resolveReturnTarget(ctx.returnNumber, profile.handBack.returnTargets, profile.handBack.returnHost);
    if (d.ok) out.returnTarget = d.target;
    else rejected.push(rejectedField(keys.returnNumber, 'return-refused', ctx.returnNumber));
  }

  const bad = CONTEXT_PROBLEMS.find((p) => p !== 'return-refused' && rejected.some((r) => r.problem === p));
  if (bad !== undefined) out.badContext = bad;
  return out;
}
