import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { configSchema, profileSchema, type GenesysConfig, type Profile } from '../src/config/schema.js';
import { DECLINE_CLASSES, OUTCOMES, type Outcome, type PaymentResult } from '../src/domain/outcome.js';
import { isPayIvrError } from '../src/errors.js';
import { resolveReturnTarget, type AllowedReturnTarget } from '../src/genesys/return-target.js';
import { RESULT_KEYS, RESULT_KEY_PRIORITY, buildReferTo, encodeResultUui, parseResultUui, selectHandBackTarget, toSipTarget } from '../src/genesys/result.js';
import { decodeUuiHeader } from '../src/genesys/uui.js';

const cfg: GenesysConfig = configSchema.parse({}).genesys;

const approved: PaymentResult = {
  outcome: 'approved',
  mode: 'automated',
  currency: 'EUR',
  amount: 4990,
  reference: 'INV-77',
  brand: 'visa',
  last4: '4242',
  transactionId: 'pi_3PqR5tLkdIwHu7ix0abc1234',
  attempts: { charges: 1, declines: 0, invalidEntries: 0 },
};

describe('encodeResultUui', () => {
  it('writes every key in the documented order when it fits', () => {
    const declined: PaymentResult = { ...approved, outcome: 'declined', declineClass: 'insufficient-funds', attempts: { charges: 2, declines: 2, invalidEntries: 0 } };
    expect(encodeResultUui(declined, 'INV-77', cfg)).toBe(
      'res=declined|ref=INV-77|txn=pi_3PqR5tLkdIwHu7ix0abc1234|amt=4990|cur=EUR|brand=visa|last4=4242|att=2|code=insufficient-funds',
    );
  });

  it('the reference argument wins over the result reference; absent fields are left out', () => {
    const r: PaymentResult = { outcome: 'not-identified', mode: 'agent', currency: 'EUR', attempts: { charges: 0, declines: 0, invalidEntries: 0 } };
    expect(encodeResultUui(r, undefined, cfg)).toBe('res=not-identified|cur=EUR|att=0');
    expect(encodeResultUui({ ...r, reference: 'R1' }, 'R2', cfg)).toBe('res=not-identified|ref=R2|cur=EUR|att=0');
  });

  it('with a long transaction id, keys are dropped in order and no value is cut', () => {
    const longTxn = 'T'.repeat(90);
    const r: PaymentResult = { ...approved, outcome: 'declined', declineClass: 'do-not-honor', transactionId: longTxn };
    const out = encodeResultUui(r, 'INV-77', cfg);
    expect(out).toBe(`res=declined|ref=INV-77|txn=${longTxn}|amt=4990`);
    expect(out.length).toBeLessThanOrEqual(128);
  });

  it('a transaction id that cannot fit is dropped whole, with every lower-priority key', () => {
    const r: PaymentResult = { ...approved, transactionId: 'X'.repeat(200) };
    expect(encodeResultUui(r, 'INV-77', cfg)).toBe('res=approved|ref=INV-77');
  });

  it('shrinking budgets drop keys exactly in the order code, att, brand, last4, src, cur, amt, txn, ref, why', () => {
    // Every key at once: `why` is written with outcome error only.
    const r: PaymentResult = { ...approved, outcome: 'error', errorReason: 'bad-amount', amountSource: 'context', transactionId: 'pi_1', declineClass: 'fraud' };
    const full = encodeResultUui(r, 'INV-77', { ...cfg, uuiBudget: 1024 });
    const present = (s: string): string[] => [...parseResultUui(s, cfg).keys()];
    expect(present(full)).toEqual([...RESULT_KEYS]);
    const dropOrder: string[] = [];
    let previous = present(full);
    for (let budget = full.length; budget >= 9; budget--) {
      const out = encodeResultUui(r, 'INV-77', { ...cfg, uuiBudget: budget });
      expect(out.length).toBeLessThanOrEqual(budget);
      const keys = present(out);
      for (const k of keys) expect(previous).toContain(k);
      for (const k of previous) if (!keys.includes(k)) dropOrder.push(k);
      previous = keys;
    }
    expect(dropOrder).toEqual(['code', 'att', 'brand', 'last4', 'src', 'cur', 'amt', 'txn', 'ref', 'why']);
    expect(previous).toEqual(['res']);
    expect(RESULT_KEY_PRIORITY).toEqual(['why', 'ref', 'txn', 'amt', 'cur', 'src', 'last4', 'brand', 'att', 'code']);
  });

  it('why only with outcome error; src only with an amount', () => {
    const r: PaymentResult = { ...approved, amountSource: 'balance', errorReason: 'bad-amount' };
    expect(encodeResultUui(r, 'INV-77', cfg)).toBe('res=approved|ref=INV-77|txn=pi_3PqR5tLkdIwHu7ix0abc1234|amt=4990|cur=EUR|src=balance|brand=visa|last4=4242|att=1');
    const err: PaymentResult = { outcome: 'error', mode: 'automated', currency: 'USD', amountSource: 'context', errorReason: 'currency-not-accepted', attempts: { charges: 0, declines: 0, invalidEntries: 0 } };
    expect(encodeResultUui(err, 'INV-1', cfg)).toBe('res=error|why=currency-not-accepted|ref=INV-1|cur=USD|att=0');
  });

  it('result key names come from genesys.resultKeys', () => {
    const custom = configSchema.parse({ genesys: { resultKeys: { res: 'Result', src: 'AmountFrom', why: 'Reason' } } }).genesys;
    const r: PaymentResult = { ...approved, amountSource: 'caller' };
    expect(encodeResultUui(r, undefined, custom)).toBe('Result=approved|ref=INV-77|txn=pi_3PqR5tLkdIwHu7ix0abc1234|amt=4990|cur=EUR|AmountFrom=caller|brand=visa|last4=4242|att=1');
    expect(encodeResultUui({ ...r, outcome: 'error', errorReason: 'duplicate-key' }, 'R', custom).startsWith('Result=error|Reason=duplicate-key|ref=R|')).toBe(true);
  });

  it('keeps res only when even res + ref does not fit', () => {
    expect(encodeResultUui(approved, 'R'.repeat(200), cfg)).toBe('res=approved');
    expect(encodeResultUui(approved, 'R'.repeat(20), { ...cfg, uuiBudget: 20 })).toBe('res=approved');
    // res is kept even beyond a tiny budget
    expect(encodeResultUui({ ...approved, outcome: 'amount-refused' }, 'R', { ...cfg, uuiBudget: 16 })).toBe('res=amount-refused');
  });

  it('removes separators from values and never writes more than 4 card digits', () => {
    const r: PaymentResult = { ...approved, transactionId: 'a|b=c d', last4: '424242' };
    const out = encodeResultUui(r, 'I|N=V', cfg);
    expect(out).toBe('res=approved|ref=INV|txn=abcd|amt=4990|cur=EUR|brand=visa|att=1');
  });

  it('custom separators are honoured and sanitised', () => {
    const c = { ...cfg, fieldSeparator: ';', keyValueSeparator: ':' };
    expect(encodeResultUui({ ...approved, transactionId: 't;1:2' }, 'A;B', c)).toBe('res:approved;ref:AB;txn:t12;amt:4990;cur:EUR;brand:visa;last4:4242;att:1');
  });

  it('property: within budget, parseable, res first, values whole', () => {
    const text = fc.string({ maxLength: 80 });
    const result = fc.record({
      outcome: fc.constantFrom(...OUTCOMES),
      amount: fc.option(fc.integer({ min: 0, max: 99_999_999_999 }), { nil: undefined }),
      currency: fc.constantFrom('EUR', 'USD', 'JPY', 'KWD'),
      transactionId: fc.option(text, { nil: undefined }),
      brand: fc.option(fc.constantFrom('visa', 'mastercard', 'amex'), { nil: undefined }),
      last4: fc.option(fc.stringMatching(/^[0-9]{4}$/), { nil: undefined }),
      declineClass: fc.option(fc.constantFrom(...DECLINE_CLASSES), { nil: undefined }),
      charges: fc.nat(20),
    });
    fc.assert(
      fc.property(result, fc.option(text, { nil: undefined }), fc.integer({ min: 18, max: 300 }), (g, ref, budget) => {
        const r: PaymentResult = {
          outcome: g.outcome,
          mode: 'automated',
          currency: g.currency,
          amount: g.amount,
          transactionId: g.transactionId,
          brand: g.brand,
          last4: g.last4,
          declineClass: g.declineClass,
          attempts: { charges: g.charges, declines: 0, invalidEntries: 0 },
        };
        const out = encodeResultUui(r, ref, { ...cfg, uuiBudget: budget });
        expect(out.length).toBeLessThanOrEqual(budget);
        expect(out).toMatch(/^[\x21-\x7E]+$/);
        const fields = out.split('|');
        expect(fields[0]).toBe(`res=${g.outcome}`);
        for (const f of fields) expect(f).toMatch(/^[a-z0-9]+=[^|=]+$/);
        const parsed = parseResultUui(out, cfg);
        // Each written value is the whole sanitised value, never a prefix.
        const clean = (v: string): string => v.replace(/[^\x21-\x7E]|[|=]/g, '');
        if (parsed.has('txn')) expect(parsed.get('txn')).toBe(clean(g.transactionId ?? ''));
        if (parsed.has('ref')) expect(parsed.get('ref')).toBe(clean(ref ?? ''));
        if (parsed.has('amt')) expect(parsed.get('amt')).toBe(String(g.amount));
        // Prefix property: a kept key implies every higher-priority key that had a value.
        const had: Record<string, boolean> = {
          ref: clean(ref ?? '') !== '',
          txn: clean(g.transactionId ?? '') !== '',
          amt: g.amount !== undefined,
          cur: true,
          last4: g.last4 !== undefined,
          brand: g.brand !== undefined,
          att: true,
          code: g.declineClass !== undefined,
        };
        let gap = false;
        for (const k of RESULT_KEY_PRIORITY) {
          if (!had[k]) continue;
          if (!parsed.has(k)) gap = true;
          else expect(gap).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('buildReferTo', () => {
  const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex').toUpperCase();
  const uui = 'res=approved|ref=INV-77|txn=pi_1|amt=4990|cur=EUR|brand=visa|last4=4242|att=1';

  it('the documented form, exactly', () => {
    const referTo = buildReferTo('sip:+33140000000@genesys.example.com', uui);
    expect(referTo).toBe(`<sip:+33140000000@genesys.example.com?User-to-User=00${hexOf(uui)}%3Bencoding%3Dhex>`);
    // Decoding the header back gives the ASCII.
    const m = /^<sip:[^?]+\?User-to-User=([^>]+)>$/.exec(referTo);
    expect(m).not.toBeNull();
    const headerValue = decodeURIComponent(m?.[1] ?? '');
    expect(headerValue).toBe(`00${hexOf(uui)};encoding=hex`);
    expect(decodeUuiHeader(headerValue)?.data).toBe(uui);
  });

  it('URI parameters stay before the headers; existing headers get &', () => {
    expect(buildReferTo('sip:+331@h;transport=tls', 'res=error')).toBe(`<sip:+331@h;transport=tls?User-to-User=00${hexOf('res=error')}%3Bencoding%3Dhex>`);
    expect(buildReferTo('<sip:q@h?X-A=1>', 'res=error')).toBe(`<sip:q@h?X-A=1&User-to-User=00${hexOf('res=error')}%3Bencoding%3Dhex>`);
    expect(buildReferTo('sips:q@h', 'res=error').startsWith('<sips:q@h?User-to-User=00')).toBe(true);
  });

  it('tel: and bare numbers need a host', () => {
    expect(buildReferTo('tel:+33140000000', 'res=error', 'byoc.example')).toBe(`<sip:+33140000000@byoc.example?User-to-User=00${hexOf('res=error')}%3Bencoding%3Dhex>`);
    expect(buildReferTo('+33140000000', 'res=error', 'byoc.example').startsWith('<sip:+33140000000@byoc.example?')).toBe(true);
    expect(() => buildReferTo('+33140000000', 'res=error')).toThrow();
    try {
      buildReferTo('not a uri', 'res=error', 'h');
      expect.unreachable();
    } catch (e) {
      expect(isPayIvrError(e, 'ERR_REFER_FAILED')).toBe(true);
    }
  });

  it('toSipTarget normalises', () => {
    expect(toSipTarget(' <sip:a@b> ')).toBe('sip:a@b');
    expect(toSipTarget('tel:+1-555-000-1111', 'h')).toBe('sip:+15550001111@h');
  });
});

describe('selectHandBackTarget', () => {
  const handBack: Profile['handBack'] = profileSchema.parse({
    psp: { type: 'sandbox' },
    handBack: {
      automated: 'sip:+33100000001@byoc.example',
      agent: 'sip:+33100000002@byoc.example',
      returnHost: 'byoc.example',
      byOutcome: { 'max-declines': 'sip:+33100000003@byoc.example', 'not-identified': 'sip:+33100000004@byoc.example' },
    },
  }).handBack;
  const noAgent: Profile['handBack'] = { ...handBack, agent: undefined, byOutcome: {} };
  type Ctx = { mode: 'automated' | 'agent'; returnTarget?: AllowedReturnTarget };
  /** A ret= value as resolveReturnTarget turns it into a target (the only way to get one). */
  const allowed = (ret: string): AllowedReturnTarget => {
    const d = resolveReturnTarget(ret, { numbers: '\\+33[0-9]{9}|\\+331', hosts: ['edge.example'], uris: [] }, 'byoc.example');
    if (!d.ok) throw new Error(`${ret} not allowed`);
    return d.target;
  };
  const automated: Ctx = { mode: 'automated' };
  const agentRet: Ctx = { mode: 'agent', returnTarget: allowed('+33140000000') };
  const agentNoRet: Ctx = { mode: 'agent' };

  const table: [string, Outcome, Ctx, Profile['handBack'], string][] = [
    ['automated approved -> automated', 'approved', automated, handBack, 'sip:+33100000001@byoc.example'],
    ['automated declined -> automated', 'declined', automated, handBack, 'sip:+33100000001@byoc.example'],
    ['automated max-declines -> override', 'max-declines', automated, handBack, 'sip:+33100000003@byoc.example'],
    ['automated not-identified -> override', 'not-identified', automated, handBack, 'sip:+33100000004@byoc.example'],
    ['automated not-identified, no override -> automated', 'not-identified', automated, noAgent, 'sip:+33100000001@byoc.example'],
    ['agent approved -> return number + host', 'approved', agentRet, handBack, 'sip:+33140000000@byoc.example'],
    ['agent max-declines -> override', 'max-declines', agentRet, handBack, 'sip:+33100000003@byoc.example'],
    ['agent not-identified -> the agent, not the override', 'not-identified', agentRet, handBack, 'sip:+33140000000@byoc.example'],
    ['agent without ret -> handBack.agent', 'approved', agentNoRet, handBack, 'sip:+33100000002@byoc.example'],
    ['agent not-identified without ret -> handBack.agent', 'not-identified', agentNoRet, handBack, 'sip:+33100000002@byoc.example'],
    ['agent without ret and no agent target -> automated', 'approved', agentNoRet, noAgent, 'sip:+33100000001@byoc.example'],
    ['agent with an allowed sip ret URI -> rebuilt', 'approved', { mode: 'agent', returnTarget: allowed('sip:+331@edge.example') }, handBack, 'sip:+331@edge.example'],
    ['agent with a tel ret -> sip on returnHost', 'cancelled', { mode: 'agent', returnTarget: allowed('tel:+331') }, noAgent, 'sip:+331@byoc.example'],
  ];
  it.each(table)('%s', (_name, outcome, ctx, hb, expected) => {
    expect(selectHandBackTarget(outcome, ctx, hb)).toBe(expected);
  });

  it('unconfirmed: its own override, else the psp-error one, else the usual target', () => {
    const pspQueue = 'sip:+33100000005@byoc.example';
    const unknownQueue = 'sip:+33100000006@byoc.example';
    expect(selectHandBackTarget('unconfirmed', automated, { ...handBack, byOutcome: { 'psp-error': pspQueue } })).toBe(pspQueue);
    expect(selectHandBackTarget('unconfirmed', automated, { ...handBack, byOutcome: { 'psp-error': pspQueue, unconfirmed: unknownQueue } })).toBe(unknownQueue);
    expect(selectHandBackTarget('psp-error', automated, { ...handBack, byOutcome: { unconfirmed: unknownQueue } })).toBe('sip:+33100000001@byoc.example');
    expect(selectHandBackTarget('unconfirmed', agentRet, noAgent)).toBe('sip:+33140000000@byoc.example');
  });

  it('a bare number in the configuration uses returnHost', () => {
    expect(selectHandBackTarget('approved', automated, { ...noAgent, automated: '+33100000009' })).toBe('sip:+33100000009@byoc.example');
  });
});
