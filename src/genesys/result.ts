import type { GenesysConfig, Profile } from '../config/schema.js';
import type { Outcome, PaymentResult } from '../domain/outcome.js';
import type { CallContext } from './context.js';
import type { AllowedReturnTarget } from './return-target.js';
import { encodeUuiHex } from './uui.js';
import { toSipTarget } from './sip-target.js';

export { toSipTarget } from './sip-target.js';

/**
 * The result going back to Genesys: an ASCII UUI string carried, hex-encoded, inside the
 * Refer-To URI of the hand-back REFER (the only place Architect reads it, as Call.UUIData).
 */

/**
 * Output keys in the order they are written. These are the logical names;
 * the names written are genesys.resultKeys (by default the same).
 */
export const RESULT_KEYS = ['res', 'why', 'ref', 'txn', 'amt', 'cur', 'src', 'brand', 'last4', 'att', 'code'] as const;
type ResultKey = (typeof RESULT_KEYS)[number];

/**
 * Which optional keys survive a tight budget, most important first. `res` is always written; the
 * kept keys are the longest prefix of this list that fits, so keys are dropped from the end
 * (`code` first, `ref` last) and a present key means every higher-priority key that has a value
 * is present too (an Architect flow can rely on that). `why` (only with res=error) comes first
 * and `src` stays with the amount it describes.
 */
export const RESULT_KEY_PRIORITY: readonly Exclude<ResultKey, 'res'>[] = ['why', 'ref', 'txn', 'amt', 'cur', 'src', 'last4', 'brand', 'att', 'code'];

/** Printable ASCII without spaces, without the two separators. */
function sanitize(value: string, cfg: Pick<GenesysConfig, 'fieldSeparator' | 'keyValueSeparator'>): string {
  let out = '';
  for (const c of value) {
    if (c === cfg.fieldSeparator || c === cfg.keyValueSeparator) continue;
    const code = c.charCodeAt(0);
    if (code > 0x20 && code < 0x7f) out += c;
  }
  return out;
}

/** The candidate key values of a result (before budgeting); absent/empty ones are left out. */
function resultValues(result: PaymentResult, reference: string | undefined, cfg: GenesysConfig): Map<ResultKey, string> {
  const raw: [ResultKey, string | undefined][] = [
    ['res', result.outcome],
    ['why', result.outcome === 'error' ? result.errorReason : undefined],
    ['ref', reference ?? result.reference],
    ['txn', result.transactionId],
    ['amt', result.amount !== undefined && Number.isSafeInteger(result.amount) && result.amount >= 0 ? String(result.amount) : undefined],
    ['cur', result.currency],
    ['src', result.amount !== undefined ? result.amountSource : undefined],
    ['brand', result.brand],
    // Last 4 only: anything else in that field is not written.
    ['last4', result.last4 !== undefined && /^[0-9]{4}$/.test(result.last4) ? result.last4 : undefined],
    ['att', String(result.attempts.charges)],
    ['code', result.declineClass],
  ];
  const out = new Map<ResultKey, string>();
  for (const [k, v] of raw) {
    if (v === undefined) continue;
    const clean = sanitize(v, cfg);
    if (clean !== '') out.set(k, clean);
  }
  return out;
}

/**
 * `res=approved|ref=INV-77|txn=pi_1|amt=4990|cur=EUR|src=context|brand=visa|last4=4242|att=1|code=...`
 * within `cfg.uuiBudget` characters, key names from cfg.resultKeys. Optional keys are dropped in
 * reverse RESULT_KEY_PRIORITY order (code, att, brand, last4, src, cur, amt, txn, ref, why) until
 * the rest fits; the kept ones are written in RESULT_KEYS order; a value is never cut. `res` is
 * always there, so the string exceeds the budget only when `res=<outcome>` alone does.
 */
export function encodeResultUui(result: PaymentResult, reference: string | undefined, cfg: GenesysConfig): string {
  const values = resultValues(result, reference, cfg);
  const field = (k: ResultKey): string => `${cfg.resultKeys[k]}${cfg.keyValueSeparator}${values.get(k) ?? ''}`;
  const kept = new Set<ResultKey>(['res']);
  let length = field('res').length;
  for (const k of RESULT_KEY_PRIORITY) {
    if (!values.has(k)) continue;
    const extra = cfg.fieldSeparator.length + field(k).length;
    if (length + extra > cfg.uuiBudget) break;
    kept.add(k);
    length += extra;
  }
  return RESULT_KEYS.filter((k) => kept.has(k)).map(field).join(cfg.fieldSeparator);
}

/** Splits a result UUI back into its fields (tests, tools, the Architect-side contract). */
export function parseResultUui(ascii: string, cfg: Pick<GenesysConfig, 'fieldSeparator' | 'keyValueSeparator'>): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of ascii.split(cfg.fieldSeparator)) {
    const at = f.indexOf(cfg.keyValueSeparator);
    if (at > 0) out.set(f.slice(0, at), f.slice(at + 1));
  }
  return out;
}

/**
 * The complete Refer-To header value carrying the result UUI:
 *   <sip:+33140000000@host?User-to-User=00<HEX>%3Bencoding%3Dhex>
 * The header rides in the URI's headers component (RFC 3261 section 19.1.1): its value may not
 * contain ';' or '=' unescaped, hence %3B and %3D; the hex digits need no escaping. A target that
 * already has URI headers gets `&User-to-User=...` appended. `host` is used for "tel:" or bare
 * number targets. Throws ERR_REFER_FAILED for an unusable target.
 */
export function buildReferTo(target: string, uuiAscii: string, host?: string): string {
  const uri = toSipTarget(target, host);
  const header = `User-to-User=${encodeUuiHex(uuiAscii)}%3Bencoding%3Dhex`;
  return `<${uri}${uri.includes('?') ? '&' : '?'}${header}>`;
}

/**
 * Where the call goes back to, as a SIP URI (without the UUI; pass it to buildReferTo):
 *  1. agent mode and not identified: back to the agent (rule 3 below) - the agent handles it,
 *     whatever the overrides say;
 *  2. handBack.byOutcome[outcome] when configured (`unconfirmed` without its own entry uses the
 *     `psp-error` one: a flow that routes PSP failures somewhere gets the unknown ones there too,
 *     and tells them apart by `res=`);
 *  3. agent mode: the target the UUI `ret=` picked among the allowed ones (resolveReturnTarget;
 *     never the context's string itself), else handBack.agent, else handBack.automated;
 *  4. automated mode: handBack.automated.
 * For `hangup` there is nobody to hand back; the function still answers (the caller skips the
 * REFER). Throws ERR_REFER_FAILED when the chosen target cannot be made a SIP URI.
 */
export function selectHandBackTarget(
  outcome: Outcome,
  ctx: Pick<CallContext, 'mode'> & { returnTarget?: AllowedReturnTarget | undefined },
  handBack: Profile['handBack'],
): string {
  const host = handBack.returnHost;
  const agentTarget = (): string => ctx.returnTarget ?? toSipTarget(handBack.agent ?? handBack.automated, host);
  if (ctx.mode === 'agent' && outcome === 'not-identified') return agentTarget();
  const override = handBack.byOutcome[outcome] ?? (outcome === 'unconfirmed' ? handBack.byOutcome['psp-error'] : undefined);
  if (override !== undefined) return toSipTarget(override, host);
  if (ctx.mode === 'agent') return agentTarget();
  return toSipTarget(handBack.automated, host);
}
