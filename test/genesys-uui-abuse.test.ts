import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { selectProfile } from '../src/config/profiles.js';
import { extractContext } from '../src/genesys/context.js';
import { resolveContext } from '../src/genesys/resolve-context.js';
import { buildReferTo, encodeResultUui, selectHandBackTarget } from '../src/genesys/result.js';
import { escapeSipUser, resolveReturnTarget } from '../src/genesys/return-target.js';

/**
 * The UUI abuse table: what each hostile or broken context gets, at the parser level (the e2e
 * suite test/e2e-uui-abuse.test.ts plays a few rows through the real SIP stack). For every row:
 * the rejected fields (key and reason), what happens under onBadContext hand-back (the default)
 * and under enter-amount, and the Refer-To the call is handed back with.
 */

const config = parseConfig({
  profiles: {
    default: {
      psp: { type: 'sandbox' },
      currency: 'EUR',
      minAmount: 100,
      maxAmount: 500_000,
      acceptedCurrencies: { JPY: { minAmount: 100, maxAmount: 100_000 }, GBP: { minAmount: 100, maxAmount: 400_000 } },
      handBack: {
        automated: 'sip:+33100000001@byoc.example',
        agent: 'sip:+33100000002@byoc.example',
        returnHost: 'byoc.example',
        returnTargets: { numbers: '\\+33[0-9]{9}', hosts: ['agents.byoc.example'], uris: ['sip:payments-queue@byoc.example;transport=tls'] },
      },
    },
    gold: { currency: 'EUR', psp: { type: 'sandbox' } },
  },
});
const AUTOMATED = 'sip:+33100000001@byoc.example';
const AGENT = 'sip:+33100000002@byoc.example';

interface Decision {
  /** "key:problem" of every rejected field, in order. */
  rejected: string[];
  /** onBadContext hand-back: `error why=<code>`, or what the dialogue starts with. */
  handBack: string;
  /** onBadContext enter-amount: what the dialogue starts with. */
  enterAmount: string;
  /** The target of the hand-back REFER. */
  target: string;
  referTo: string;
  /** The `shown` value of every rejected field (what a log line may contain). */
  shown: string[];
}

function decide(uui: string): Decision {
  const hex = `00${Buffer.from(uui, 'utf8').toString('hex')}`;
  const ctx = extractContext((n) => (n.toLowerCase() === 'user-to-user' ? `${hex};encoding=hex` : undefined), config.genesys);
  const selected = selectProfile(config, '+33199999999', ctx.profile);
  const r = resolveContext(ctx, selected, config.genesys.keys);
  const start = !ctx.identified ? 'not-identified' : r.amount !== undefined ? `context ${r.amount} ${r.currency}` : `caller enters ${r.currency}`;
  const outcome = r.badContext !== undefined ? 'error' : 'approved';
  const target = selectHandBackTarget(outcome, { mode: ctx.mode, returnTarget: r.returnTarget }, selected.profile.handBack);
  const uuiOut = encodeResultUui({ outcome, mode: ctx.mode, currency: r.currency, errorReason: r.badContext, attempts: { charges: 0, declines: 0, invalidEntries: 0 } }, ctx.reference, config.genesys);
  return {
    rejected: r.rejected.map((x) => `${x.key}:${x.problem}`),
    handBack: r.badContext !== undefined ? `error why=${r.badContext}` : start,
    enterAmount: start,
    target,
    referTo: buildReferTo(target, uuiOut),
    shown: r.rejected.flatMap((x) => (x.shown === undefined ? [] : [x.shown])),
  };
}

type Row = [name: string, uui: string, rejected: string[], handBack: string, enterAmount: string, target?: string];

const KEYS: [string, string, string][] = [
  ['acct', 'C-1', 'C-2'],
  ['amt', '49.90', '1.00'],
  ['cur', 'EUR', 'GBP'],
  ['ref', 'INV-1', 'INV-2'],
  ['mode', 'automated', 'agent'],
  ['agent', 'a-1', 'a-2'],
  ['ret', '+33140000000', '+33140000001'],
  ['lang', 'fr-FR', 'en-US'],
  ['ident', '1', '0'],
  ['profile', 'gold', 'default'],
];

const ROWS: Row[] = [
  ['baseline', 'acct=C-1|amt=49.90|cur=EUR|ref=INV-1', [], 'context 4990 EUR', 'context 4990 EUR'],
  // Duplicates: no copy wins, whichever comes first.
  ...KEYS.map(([k, a, b]): Row => {
    const enter = k === 'ident' ? 'not-identified' : k === 'amt' || k === 'cur' ? 'caller enters EUR' : 'context 4990 EUR';
    const base = k === 'amt' || k === 'cur' ? 'acct=C-1' : 'amt=49.90|cur=EUR';
    const rejected = k === 'cur' ? ['cur:duplicate-key', 'amt:duplicate-key'] : [`${k}:duplicate-key`];
    return [`duplicate ${k}`, `${base}|${k}=${a}|${k}=${b}${k === 'cur' ? '|amt=49.90' : ''}`, rejected, 'error why=duplicate-key', enter, AUTOMATED];
  }),
  ['duplicate key in another case', 'amt=49.90|AMT=1.00|cur=EUR', ['amt:duplicate-key'], 'error why=duplicate-key', 'caller enters EUR'],
  ['unknown keys may repeat', 'x=1|x=2|amt=49.90|cur=EUR', [], 'context 4990 EUR', 'context 4990 EUR'],
  // Amounts.
  ['comma decimal', 'amt=49,90|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['exponent', 'amt=1e3|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['negative', 'amt=-5|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['hex', 'amt=0x10|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['three decimals in EUR', 'amt=49.999|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['twenty digits', 'amt=12345678901234567890|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['empty', 'amt=|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['key without a value', 'amt|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['leading space', 'amt= 49.90|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['inner space', 'amt=49 .90|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['zero', 'amt=0.00|cur=EUR', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters EUR'],
  ['below the minimum', 'amt=0.50|cur=EUR', ['amt:amount-out-of-range'], 'error why=amount-out-of-range', 'caller enters EUR'],
  ['above the maximum', 'amt=5000.01|cur=EUR', ['amt:amount-out-of-range'], 'error why=amount-out-of-range', 'caller enters EUR'],
  ['one decimal is fine', 'amt=49.9|cur=EUR', [], 'context 4990 EUR', 'context 4990 EUR'],
  ['no cur: the profile currency', 'amt=49.90', [], 'context 4990 EUR', 'context 4990 EUR'],
  // Currencies.
  ['unknown currency JPX', 'amt=49.90|cur=JPX', ['cur:bad-currency', 'amt:bad-currency'], 'error why=bad-currency', 'caller enters EUR'],
  ['lower-case eur', 'amt=49.90|cur=eur', [], 'context 4990 EUR', 'context 4990 EUR'],
  ['JPY accepted, whole yen', 'amt=1500|cur=JPY', [], 'context 1500 JPY', 'context 1500 JPY'],
  ['JPY with decimals', 'amt=1500.5|cur=JPY', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters JPY'],
  ['JPY with .0', 'amt=1500.0|cur=JPY', ['amt:bad-amount'], 'error why=bad-amount', 'caller enters JPY'],
  ['GBP listed: charged in GBP', 'amt=49.90|cur=GBP', [], 'context 4990 GBP', 'context 4990 GBP'],
  ['GBP above its own maximum', 'amt=4000.01|cur=GBP', ['amt:amount-out-of-range'], 'error why=amount-out-of-range', 'caller enters GBP'],
  ['USD not listed', 'amt=49.90|cur=USD', ['cur:currency-not-accepted', 'amt:currency-not-accepted'], 'error why=currency-not-accepted', 'caller enters EUR'],
  ['currency with spaces', 'amt=49.90|cur= EUR', ['cur:bad-currency', 'amt:bad-currency'], 'error why=bad-currency', 'caller enters EUR'],
  // mode / ident / lang / profile / text fields.
  ['mode garbage', 'amt=49.90|mode=robot', ['mode:bad-field'], 'error why=bad-field', 'context 4990 EUR', AUTOMATED],
  ['mode with a parameter', 'amt=49.90|mode=agent;x=1', ['mode:bad-field'], 'error why=bad-field', 'context 4990 EUR', AUTOMATED],
  ['mode upper-case is fine', 'amt=49.90|mode=AGENT', [], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ident garbage', 'amt=49.90|ident=maybe', ['ident:bad-field'], 'error why=bad-field', 'not-identified'],
  ['ident empty', 'amt=49.90|ident=', ['ident:bad-field'], 'error why=bad-field', 'not-identified'],
  ['ident 2', 'amt=49.90|ident=2', ['ident:bad-field'], 'error why=bad-field', 'not-identified'],
  ['lang unknown', 'amt=49.90|lang=de-DE', ['lang:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  ['profile that does not exist', 'amt=49.90|profile=nope', ['profile:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  ['profile path', 'amt=49.90|profile=../x', ['profile:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  ['reference with a trailing space (card-like)', 'amt=49.90|ref=4242424242424242 ', ['ref:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  ['account that looks like a card number', 'amt=49.90|acct=4242424242424242', ['acct:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  ['agent id with 12 digits is fine', 'amt=49.90|agent=A123456789012', [], 'context 4990 EUR', 'context 4990 EUR'],
  ['account too long', `amt=49.90|acct=${'A'.repeat(129)}`, ['acct:bad-field'], 'error why=bad-field', 'context 4990 EUR'],
  // ret= forms (agent mode): allowed ones are rebuilt, anything else is refused and the configured target used.
  ['ret allowed number', 'amt=49.90|mode=agent|ret=+33140000000', [], 'context 4990 EUR', 'context 4990 EUR', 'sip:+33140000000@byoc.example'],
  ['ret allowed tel: URI', 'amt=49.90|mode=agent|ret=tel:+33140000000', [], 'context 4990 EUR', 'context 4990 EUR', 'sip:+33140000000@byoc.example'],
  ['ret number off the pattern', 'amt=49.90|mode=agent|ret=+15550001111', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret number with separators', 'amt=49.90|mode=agent|ret=tel:+33-1-40-00-00-00', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret on an allowed host', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example', [], 'context 4990 EUR', 'context 4990 EUR', 'sip:agent-7@agents.byoc.example'],
  ['ret host in upper case', 'amt=49.90|mode=agent|ret=sip:agent-7@AGENTS.byoc.example', [], 'context 4990 EUR', 'context 4990 EUR', 'sip:agent-7@agents.byoc.example'],
  ['ret listed URI: the configured string', 'amt=49.90|mode=agent|ret=sip:payments-queue@byoc.example;transport=tls', [], 'context 4990 EUR', 'context 4990 EUR', 'sip:payments-queue@byoc.example;transport=tls'],
  ['ret attacker host', 'amt=49.90|mode=agent|ret=sip:x@attacker.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret maddr', 'amt=49.90|mode=agent|ret=sip:+33140000000@byoc.example;maddr=attacker.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret method', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example;method=INVITE', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret transport', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example;transport=udp', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret sips', 'amt=49.90|mode=agent|ret=sips:agent-7@agents.byoc.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret URI headers', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example?Route=%3Csip:attacker.example%3E', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret escaped CRLF', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example%0d%0aVia:attacker', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret escaped user', 'amt=49.90|mode=agent|ret=sip:a%40attacker.example@agents.byoc.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret angle brackets', 'amt=49.90|mode=agent|ret=<sip:agent-7@agents.byoc.example>', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret closing bracket', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example>;x', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret with a space', 'amt=49.90|mode=agent|ret=sip:agent 7@agents.byoc.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret with a port not listed', 'amt=49.90|mode=agent|ret=sip:agent-7@agents.byoc.example:5099', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret user@host@host', 'amt=49.90|mode=agent|ret=sip:x@attacker.example@agents.byoc.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret subdomain of an allowed host', 'amt=49.90|mode=agent|ret=sip:x@agents.byoc.example.attacker.example', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  ['ret empty', 'amt=49.90|mode=agent|ret=', ['ret:return-refused'], 'context 4990 EUR', 'context 4990 EUR', AGENT],
  // Non-ASCII or raw control characters anywhere: the UUI is not printable ASCII, so none of it is read.
  ['ret with a full-width letter', 'amt=49.90|mode=agent|ret=sip:\uff58@agents.byoc.example', ['User-to-User:unreadable'], 'error why=unreadable', 'caller enters EUR', AUTOMATED],
  ['ret with a raw CRLF', 'amt=49.90|mode=agent|ret=sip:x@agents.byoc.example\r\nVia: x', ['User-to-User:unreadable'], 'error why=unreadable', 'caller enters EUR', AUTOMATED],
  ['amount in Arabic-Indic digits', 'amt=\u0664\u0669|cur=EUR', ['User-to-User:unreadable'], 'error why=unreadable', 'caller enters EUR'],
  // Automated mode never uses ret=, even an allowed one.
  ['ret in automated mode', 'amt=49.90|ret=+33140000000', [], 'context 4990 EUR', 'context 4990 EUR', AUTOMATED],
  ['ret refused and a bad amount', 'amt=1e3|mode=agent|ret=sip:x@attacker.example', ['amt:bad-amount', 'ret:return-refused'], 'error why=bad-amount', 'caller enters EUR', AGENT],
];

describe('UUI abuse table (parser level)', () => {
  it.each(ROWS)('%s: %s', (_name, uui, rejected, handBack, enterAmount, target) => {
    const d = decide(uui);
    expect(d.rejected).toEqual(rejected);
    expect(d.handBack).toBe(handBack);
    expect(d.enterAmount).toBe(enterAmount);
    if (target !== undefined) expect(d.target).toBe(target);
    // Whatever the row, the Refer-To is <configured-or-rebuilt target?User-to-User=...> and nothing else.
    expect(d.referTo).toMatch(/^<sips?:[^<>\s?]+\?User-to-User=00[0-9A-F]+%3Bencoding%3Dhex>$/);
    expect(d.referTo.startsWith(`<${d.target}?`)).toBe(true);
    expect(d.referTo).not.toMatch(/attacker|maddr|method=|%0d|%0a|Route|Via/i);
    // A value that could be card data (6 digits or more) is never kept for a log line.
    for (const s of d.shown) expect(s.replace(/[^0-9]/g, '').length, s).toBeLessThan(6);
  });

  it('the shown values: short ones as sent (logs help operators), card-like ones never', () => {
    expect(decide('amt=49,90').shown).toEqual(['49,90']);
    expect(decide('amt=12345678901234567890').shown).toEqual([]);
    expect(decide('cur=JPX|amt=1').shown).toEqual(['JPX', '1']);
    expect(decide('amt=49.90|ref=4242 4242 4242 4242 ').shown).toEqual([]);
    expect(decide('amt=49.90|mode=agent|ret=sip:x@attacker.example').shown).toEqual(['sip:x@attacker.example']);
    // A phone number has too many digits to be shown.
    expect(decide('amt=49.90|mode=agent|ret=+15550001111').shown).toEqual([]);
  });

  it('a user part is escaped per RFC 3261 (unreserved and user-unreserved kept)', () => {
    expect(escapeSipUser('+33140000000')).toBe('+33140000000');
    expect(escapeSipUser("a-_.!~*'()&=+$,;?/b")).toBe("a-_.!~*'()&=+$,;?/b");
    expect(escapeSipUser('a b%<>@:\r\n\u00e9')).toBe('a%20b%25%3C%3E%40%3A%0D%0A%C3%A9');
  });

  it('resolveReturnTarget refuses everything when nothing is configured', () => {
    for (const v of ['+33140000000', 'tel:+33140000000', 'sip:a@b.example', 'sip:payments@byoc.example']) {
      expect(resolveReturnTarget(v, { hosts: [], uris: [] }, 'byoc.example')).toEqual({ ok: false, why: 'not-allowed' });
    }
    expect(resolveReturnTarget('sips:a@b.example', { hosts: ['b.example'], uris: [] }, 'h')).toEqual({ ok: false, why: 'not-a-target' });
  });

  it('an unreadable UUI is a bad context too', () => {
    const ctx = extractContext((n) => (n === 'User-to-User' ? 'ZZZZ;encoding=hex' : undefined), config.genesys);
    const r = resolveContext(ctx, selectProfile(config, '+1', undefined), config.genesys.keys);
    expect(r.badContext).toBe('unreadable');
    expect(r.rejected).toEqual([{ key: 'User-to-User', problem: 'unreadable', length: 0 }]);
  });

  it('the outgoing UUI of a bad context: res=error|why=<code>', () => {
    const d = decide('acct=C-1|amt=49,90|ref=INV-9');
    const hex = /User-to-User=00([0-9A-F]+)%3B/.exec(d.referTo)?.[1] ?? '';
    expect(Buffer.from(hex, 'hex').toString('latin1')).toBe('res=error|why=bad-amount|ref=INV-9|cur=EUR|att=0');
  });
});
