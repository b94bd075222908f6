import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { parseUui, runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import type { DtmfStep } from './support/dtmf-pcap.js';
import { cardSteps, paymentSteps } from './support/payment-steps.js';
import { e2eNodeConfig } from './support/app-config.js';
import { shortPromptsDir } from './support/short-prompts.js';
import { logOnceItHas } from './support/run-texts.js';

/**
 * Rows of the UUI abuse table (test/genesys-uui-abuse.test.ts) through the real embedded SIP
 * stack, SIPp playing Genesys: the REFER's Refer-To must point at the configured (or allowed and
 * rebuilt) target and carry nothing injected, the result UUI must say what happened, and the run's
 * logs must hold neither the card digits nor the abusive values that could be card data.
 */

const TARGET = '127.0.0.1:25090';
const VISA = '4242424242424242';
const EXPIRY = '1234';
const CVC = '737';
/** Abusive context values that look like card data: they must not reach any log or result. */
const CARD_LIKE = ['12345678901234567890', '4111111111111111', '5555555555554444'];
const SECRETS = [VISA, VISA.slice(0, 12), ...CARD_LIKE];

const AUTOMATED = 'sip:+18005550100@127.0.0.1';
const AGENT = 'sip:+18005550177@127.0.0.1';

const card = (): DtmfStep[] => cardSteps(VISA, { expiry: EXPIRY, cvc: CVC });

let app: App | undefined;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-e2e-abuse-'));
  const config = parseConfig(e2eNodeConfig({
    dir,
    sip: [{ transport: 'udp', port: 25090 }],
    rtp: [36400, 36999],
    // Results and logs are checked, not the audio: the short prompt pack.
    rest: { admin: { enabled: false }, promptsDir: shortPromptsDir() },
    profiles: {
      default: {
        language: 'en-US',
        currency: 'USD',
        amountSource: 'context',
        minAmount: 100,
        maxAmount: 500_000,
        timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
        psp: { type: 'sandbox' },
        handBack: {
          automated: AUTOMATED,
          agent: AGENT,
          returnHost: 'genesys.example',
          returnTargets: { numbers: '\\+33[0-9]{9}', hosts: ['agents.genesys.example'] },
        },
      },
      // Goes on after a bad context; GBP is accepted.
      lenient: {
        calledNumbers: ['+18005550126'],
        language: 'en-US',
        currency: 'USD',
        onBadContext: 'enter-amount',
        acceptedCurrencies: { GBP: { minAmount: 100, maxAmount: 400_000 } },
        timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
        psp: { type: 'sandbox' },
        handBack: { automated: AUTOMATED, agent: AGENT, returnHost: 'genesys.example' },
      },
    },
  }));
  // debug level on purpose: the leak scan must hold even at the most verbose shipped level.
  app = await startApp(config, createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }));
}, 60_000);

afterAll(async () => {
  await app?.stop();
});

interface Case {
  name: string;
  uui: string;
  service?: string;
  steps: DtmfStep[];
}

const LENIENT = '+18005550126';
const CASES: Case[] = [
  { name: 'duplicate-amt', uui: 'acct=C-1|amt=49.90|ref=INV-1|amt=1.00', steps: [] },
  { name: 'unknown-currency', uui: 'acct=C-2|amt=49.90|cur=JPX|ref=INV-2', steps: [] },
  { name: 'currency-not-accepted', uui: 'acct=C-3|amt=10.00|cur=EUR|ref=INV-3', steps: [] },
  { name: 'card-like-values', uui: `acct=${CARD_LIKE[2]}|amt=${CARD_LIKE[0]}|ref=${CARD_LIKE[1]} |agent=a-4`, steps: [] },
  // Agent mode, bad amount, and a ret= with escaped CRLF and a header: error, back to the configured agent target.
  { name: 'crlf-ret', uui: 'acct=C-5|amt=49,90|ref=INV-5|mode=agent|ret=sip:x@agents.genesys.example%0d%0aContact:<sip:x@attacker.example>', steps: [] },
  // Not identified (hands back at once) with hostile ret= forms: only the configured agent target is used.
  { name: 'maddr-ret', uui: 'acct=C-6|amt=10.00|ref=INV-6|mode=agent|ident=0|ret=sip:+33140000000@attacker.example;maddr=attacker.example;method=INVITE', steps: [] },
  { name: 'sips-header-ret', uui: 'acct=C-7|amt=10.00|ref=INV-7|mode=agent|ident=0|ret=sips:a@agents.genesys.example?Route=%3Csip:attacker.example%3E', steps: [] },
  // The positive controls: an allowed host and an allowed number are rebuilt from their parts.
  { name: 'allowed-host-ret', uui: 'acct=C-8|amt=10.00|ref=INV-8|mode=agent|ident=0|ret=sip:agent-7@AGENTS.genesys.example', steps: [] },
  { name: 'allowed-number-ret', uui: 'acct=C-9|amt=10.00|ref=INV-9|mode=agent|ident=0|ret=tel:+33140000000', steps: [] },
  // enter-amount: the bad amount is rejected and the caller enters 12.50; the result says src=caller.
  { name: 'lenient-bad-amount', service: LENIENT, uui: 'acct=C-10|amt=1e3|cur=USD|ref=INV-10', steps: [{ pauseMs: 3_000 }, { keys: '12*5#' }, { pauseMs: 1_500 }, { keys: '1' }, { pauseMs: 800 }, ...card()] },
  // An accepted other currency: charged in GBP, src=context.
  { name: 'lenient-gbp', service: LENIENT, uui: 'acct=C-11|amt=49.90|cur=GBP|ref=INV-11', steps: paymentSteps(VISA, { expiry: EXPIRY, cvc: CVC }) },
];

const results = new Map<string, GenesysCallResult>();

describe('UUI abuse end to end (SIPp as Genesys, embedded backend)', () => {
  beforeAll(async () => {
    await Promise.all(
      CASES.map(async (c, i) => {
        await new Promise((r) => setTimeout(r, i * 150));
        const r = await runGenesysCall({
          scenario: 'payment',
          target: TARGET,
          uui: c.uui,
          conversationId: `cnv-abuse-${c.name}`,
          steps: c.steps,
          service: c.service,
          localPort: 25600 + i * 4,
          mediaPort: 36100 + i * 4,
          timeoutS: 120,
        });
        results.set(c.name, r);
      }),
    );
    await app?.idle();
  }, 180_000);

  const call = (name: string): { r: GenesysCallResult; uui: Record<string, string> } => {
    const r = results.get(name);
    if (r?.exitCode !== 0 || !r.resultUui) throw new Error(`${name}: sipp exit ${r?.exitCode}, no result UUI\n${r?.output}`);
    return { r, uui: parseUui(r.resultUui) };
  };
  /** The Refer-To is exactly <target?User-to-User=...>: no parameter or header from the context. */
  const expectReferTo = (r: GenesysCallResult, target: string): void => {
    expect(r.referTo).toMatch(/^<sips?:[^<>\s?]+\?User-to-User=00[0-9A-F]+%3Bencoding%3Dhex>$/);
    expect(r.referTo?.startsWith(`<${target}?User-to-User=`), r.referTo).toBe(true);
    expect(r.referTo).not.toMatch(/attacker|maddr|method=|%0d|%0a|Route|Contact/i);
  };

  it('a key sent twice: res=error|why=duplicate-key, back to the configured target', () => {
    const { r, uui } = call('duplicate-amt');
    expectReferTo(r, AUTOMATED);
    expect(uui).toEqual({ res: 'error', why: 'duplicate-key', ref: 'INV-1', cur: 'USD', att: '0' });
  });

  it('an unknown currency (JPX) is a bad context, not the profile currency', () => {
    const { r, uui } = call('unknown-currency');
    expectReferTo(r, AUTOMATED);
    expect(uui).toMatchObject({ res: 'error', why: 'bad-currency', cur: 'USD' });
    expect(uui.amt).toBeUndefined();
  });

  it('a currency the profile does not accept is refused (no caller-chosen amount)', () => {
    const { r, uui } = call('currency-not-accepted');
    expectReferTo(r, AUTOMATED);
    expect(uui).toMatchObject({ res: 'error', why: 'currency-not-accepted', ref: 'INV-3' });
  });

  it('card-like values are rejected and never echoed', () => {
    const { r, uui } = call('card-like-values');
    expectReferTo(r, AUTOMATED);
    expect(uui).toEqual({ res: 'error', why: 'bad-amount', cur: 'USD', att: '0' });
  });

  it('escaped CRLF in ret=, agent mode: refused, the configured agent target is used', () => {
    const { r, uui } = call('crlf-ret');
    expectReferTo(r, AGENT);
    expect(uui).toMatchObject({ res: 'error', why: 'bad-amount' });
  });

  it('maddr/method and sips/headers in ret=: refused, the configured agent target is used', () => {
    for (const name of ['maddr-ret', 'sips-header-ret']) {
      const { r, uui } = call(name);
      expectReferTo(r, AGENT);
      expect(uui.res).toBe('not-identified');
    }
  });

  it('allowed ret= targets are rebuilt from their parts', () => {
    expectReferTo(call('allowed-host-ret').r, 'sip:agent-7@agents.genesys.example');
    expectReferTo(call('allowed-number-ret').r, 'sip:+33140000000@genesys.example');
  });

  it('onBadContext enter-amount: the caller enters the amount, and the result says so (src=caller)', async () => {
    const { r, uui } = call('lenient-bad-amount');
    expectReferTo(r, AUTOMATED);
    expect(uui).toMatchObject({ res: 'approved', amt: '1250', cur: 'USD', src: 'caller', last4: '4242' });
    const stored = await app!.store.getByConversationId('cnv-abuse-lenient-bad-amount');
    expect(stored[0]).toMatchObject({ outcome: 'approved', amountSource: 'caller', contextProblems: [{ key: 'amt', problem: 'bad-amount' }] });
  });

  it('an accepted other currency is charged in that currency with its exponent', () => {
    const { uui } = call('lenient-gbp');
    expect(uui).toMatchObject({ res: 'approved', amt: '4990', cur: 'GBP', src: 'context' });
  });

  it('the log names each rejected key and reason; no card digits or card-like values anywhere', async () => {
    const logText = await logOnceItHas(join(dir, 'pay-ivr.log'), 'hand-back REFER done', CASES.length);
    const lines = logText.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; key?: string; problem?: string; value?: string; why?: string });
    const rejected = lines.filter((l) => l.msg === 'UUI field rejected').map((l) => `${l.key}:${l.problem}`);
    for (const k of ['amt:duplicate-key', 'cur:bad-currency', 'cur:currency-not-accepted', 'amt:bad-amount', 'ref:bad-field', 'acct:bad-field']) expect(rejected).toContain(k);
    // Nothing went wrong on the way (a result refused by the store would show here).
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    const refused = lines.filter((l) => l.msg.startsWith('UUI return target refused'));
    expect(refused.map((l) => l.key)).toEqual(['ret', 'ret', 'ret']);
    expect(lines.filter((l) => l.msg.startsWith('bad call context')).map((l) => l.why).sort()).toEqual(['bad-amount', 'bad-amount', 'bad-currency', 'currency-not-accepted', 'duplicate-key']);
    expect(lines.filter((l) => l.msg === 'hand-back REFER done')).toHaveLength(CASES.length);

    const texts: { where: string; text: string }[] = [{ where: 'pay-ivr.log', text: logText }];
    for (const r of results.values()) {
      for (const f of readdirSync(r.dir)) {
        const p = join(r.dir, f);
        if (statSync(p).isFile() && !p.endsWith('.pcap')) texts.push({ where: p, text: readFileSync(p, 'latin1') });
      }
      texts.push({ where: `result UUI ${r.dir}`, text: r.resultUui ?? '' });
    }
    for (const c of CASES) texts.push({ where: `stored ${c.name}`, text: JSON.stringify(await app!.store.getByConversationId(`cnv-abuse-${c.name}`)) });
    texts.push({ where: 'metrics', text: await app!.metrics.text() });
    // The scan must be able to fail.
    expect(new RegExp(`(?<![\\d.])${CARD_LIKE[1]}`).test(`"ref":"${CARD_LIKE[1]} "`)).toBe(true);
    for (const t of texts) {
      for (const secret of SECRETS) {
        const m = new RegExp(`(?<![\\d.])${secret}`).exec(t.text);
        expect(m, `${secret.slice(0, 4)}... found in ${t.where}`).toBeNull();
      }
    }
  });
});
