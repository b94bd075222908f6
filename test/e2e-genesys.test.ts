import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { startSandbox, type Sandbox } from '../src/psp/index.js';
import { E2E_TARGET, parseUui, runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import { keysEndMs, type DtmfStep } from './support/dtmf-pcap.js';
import { CONFIRM_AMOUNT, cardSteps } from './support/payment-steps.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { e2eNodeConfig, e2eProfile } from './support/app-config.js';
import { cardDigitHits, filesUnder, logOnceItHas, redisTexts } from './support/run-texts.js';

/**
 * The Genesys round trip end to end: SIPp plays Genesys (INVITE with UUI and x-inin-cnv, keys as
 * RFC 2833 from a pcap, REFER answered 202 + NOTIFY), pay-ivr runs the real dialogue, the sandbox
 * PSP and the Redis store. All calls run concurrently, then everything the run wrote is searched
 * for card digits.
 */

const REDIS_PORT = 19390;
const ADMIN_PORT = 19201;
const TOKEN = 'e2e-token-0123456789abcdef';
const external = process.env.PAYIVR_E2E_TARGET !== undefined;

const VISA = '4242424242424242';
const VISA_DECLINED = '4000000000000002';
const AMEX = '378282246310005';
const EXPIRY = '1234';
const CVC3 = '737';
const CVC4 = '7373';
const CARD_SECRETS = [VISA, VISA_DECLINED, AMEX, VISA.slice(0, 12), AMEX.slice(0, 11), VISA_DECLINED.slice(0, 12)];

/** Time for the PSP + decline announcement before the "another card" menu key. */
const DECLINE_MS = 9_000;

const card = (pan: string, cvc: string, endWithHash = true): DtmfStep[] => cardSteps(pan, { expiry: EXPIRY, cvc, endWithHash });
const confirmAmount = CONFIRM_AMOUNT;

let redis: RedisServer | undefined;
/** A standalone sandbox PSP for the slow-PSP profile, so the test can delay its answer. */
let slowPsp: Sandbox | undefined;
let app: App | undefined;
let dir: string;
/** Each call's SIPp ports: its own SIP port and a media port pair, inside this lane's band. */
let seq = 0;
const nextPorts = (): { localPort: number; mediaPort: number } => {
  seq += 4;
  return { localPort: 25100 + (seq % 400), mediaPort: 37000 + (seq % 300) * 2 };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-e2e-'));
  if (external) return;
  redis = await startRedisServer(REDIS_PORT);
  slowPsp = await startSandbox({ host: '127.0.0.1', port: 0 });
  // The charge of the hang-up-during-PSP call takes 6 s: the caller hangs up meanwhile.
  slowPsp.inject({ fault: { kind: 'latency', ms: 6_000 }, count: 1, method: 'POST' });
  const [host, p] = E2E_TARGET.split(':');
  const config = parseConfig(
    e2eNodeConfig({
      dir,
      sip: [{ transport: 'udp', host, port: Number(p) }, { transport: 'tcp', host, port: Number(p) }],
      rtp: [34000, 34999],
      rest: { store: { type: 'redis', redisUrl: `redis://127.0.0.1:${REDIS_PORT}`, keyPrefix: 'e2e:' }, admin: { host: '127.0.0.1', port: ADMIN_PORT, apiToken: TOKEN } },
      profiles: {
        default: e2eProfile({
          handBack: {
            automated: 'sip:+18005550100@127.0.0.1',
            returnHost: 'genesys.example',
            byOutcome: { 'max-declines': 'sip:+18005550199@127.0.0.1' },
            returnTargets: { numbers: '\\+33[0-9]{9}' },
          },
        }),
        slow: { calledNumbers: ['+18005550125'], ...e2eProfile({ psp: { type: 'sandbox', url: slowPsp.url } }) },
        entered: { calledNumbers: ['+18005550124'], ...e2eProfile({ amountSource: 'entered' }) },
      },
    }),
  );
  // debug level on purpose: the leak scan must hold even at the most verbose shipped level.
  app = await startApp(config, createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }));
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await slowPsp?.close();
  await redis?.stop();
});

interface Case {
  name: string;
  uui?: string;
  service?: string;
  scenario?: 'payment' | 'refer-refused' | 'caller-hangup';
  transport?: 'udp' | 'tcp';
  steps: DtmfStep[];
  hangupMs?: number;
}

const CASES: Case[] = [
  { name: 'approved-visa', uui: 'acct=C-1001|amt=49.90|cur=USD|ref=INV-77', steps: [...confirmAmount, ...card(VISA, CVC3)] },
  { name: 'approved-visa-tcp', transport: 'tcp', uui: 'acct=C-1011|amt=7.25|cur=USD|ref=INV-87', steps: [...confirmAmount, ...card(VISA, CVC3)] },
  { name: 'approved-amex', uui: 'acct=C-1002|amt=120.00|cur=USD|ref=INV-78', steps: [...confirmAmount, ...card(AMEX, CVC4, false)] },
  {
    name: 'declined-then-approved',
    uui: 'acct=C-1003|amt=15.00|ref=INV-79',
    steps: [...confirmAmount, ...card(VISA_DECLINED, CVC3), { pauseMs: DECLINE_MS }, { keys: '1' }, { pauseMs: 800 }, ...card(VISA, CVC3)],
  },
  {
    name: 'max-declines',
    uui: 'acct=C-1004|amt=15.00|ref=INV-80',
    steps: [...confirmAmount, ...card(VISA_DECLINED, CVC3), { pauseMs: DECLINE_MS }, { keys: '1' }, { pauseMs: 800 }, ...card(VISA_DECLINED, CVC3)],
  },
  {
    name: 'amount-below-minimum-then-corrected',
    service: '+18005550124',
    uui: 'acct=C-1005|ref=INV-81',
    steps: [{ pauseMs: 3_000 }, { keys: '0*5#' }, { pauseMs: 9_000 }, { keys: '25*5#' }, { pauseMs: 800 }, { keys: '1' }, { pauseMs: 800 }, ...card(VISA, CVC3)],
  },
  { name: 'uui-currency-differs', uui: 'acct=C-1012|amt=10.00|cur=EUR|ref=INV-88', steps: [] },
  // The caller who knows the menu: 1 while the amount is read (the welcome ends ~2.3 s, the amount
  // ~5.5 s after the answer, "press 1 to confirm" follows), then the card straight away.
  { name: 'early-confirm', uui: 'acct=C-1013|amt=12.00|cur=USD|ref=INV-89', steps: [{ pauseMs: 4_000 }, { keys: '1' }, { pauseMs: 800 }, ...card(VISA, CVC3)] },
  { name: 'not-identified', uui: 'acct=C-1006|amt=10.00|ref=INV-82|ident=0', steps: [] },
  { name: 'agent-mode', uui: 'acct=C-1007|amt=30.00|ref=INV-83|mode=agent|agent=ag-42|ret=+33140000000', steps: [...confirmAmount, ...card(VISA, CVC3)] },
  // Hangs up 1.8 s after the last key, with the card number half typed.
  { name: 'caller-hangup', scenario: 'caller-hangup', hangupMs: keysEndMs([...confirmAmount, { keys: '42424242' }]) + 1_800, uui: 'acct=C-1008|amt=10.00|ref=INV-84', steps: [...confirmAmount, { keys: '42424242' }] },
  // The charge takes 6 s after the last key; the caller hangs up 2.8 s after it.
  { name: 'hangup-during-charge', scenario: 'caller-hangup', hangupMs: keysEndMs([...confirmAmount, ...card(VISA, CVC3)]) + 2_800, service: '+18005550125', uui: 'acct=C-1010|amt=10.00|ref=INV-86', steps: [...confirmAmount, ...card(VISA, CVC3)] },
  { name: 'refer-refused', scenario: 'refer-refused', uui: 'acct=C-1009|amt=10.00|ref=INV-85|ident=0', steps: [] },
];

const results = new Map<string, GenesysCallResult>();

describe('Genesys round trip (SIPp as Genesys)', () => {
  beforeAll(async () => {
    const runs = CASES.map(async (c, i) => {
      // Stagger the INVITEs slightly; the calls then run side by side.
      await new Promise((r) => setTimeout(r, i * 150));
      const r = await runGenesysCall({
        scenario: c.scenario ?? 'payment',
        target: E2E_TARGET,
        uui: c.uui,
        conversationId: `cnv-${c.name}`,
        steps: c.steps,
        service: c.service,
        hangupMs: c.hangupMs,
        transport: c.transport,
        ...nextPorts(),
        timeoutS: 150,
      });
      results.set(c.name, r);
    });
    await Promise.all(runs);
    await app?.idle();
    if (process.env.E2E_VERBOSE) for (const [n, r] of results) console.log(n, r.exitCode, r.resultUui ?? r.byeReason ?? '-');
  }, 240_000);

  const uuiOf = (name: string): Record<string, string> => {
    const r = results.get(name);
    if (!r?.resultUui) throw new Error(`${name}: no REFER seen (sipp exit ${r?.exitCode})\n${r?.output}`);
    return parseUui(r.resultUui);
  };

  it('approved Visa: REFER back to the queue with res=approved and the last 4', () => {
    const r = results.get('approved-visa');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toMatch(/^<sip:\+18005550100@127\.0\.0\.1\?User-to-User=00[0-9A-F]+%3Bencoding%3Dhex>$/);
    const u = uuiOf('approved-visa');
    expect(u).toMatchObject({ res: 'approved', ref: 'INV-77', amt: '4990', cur: 'USD', src: 'context', brand: 'visa', last4: '4242', att: '1' });
    expect(u.txn).toBeTruthy();
  });

  it('approved over SIP/TCP as well (BYOC trunks often use TCP or TLS)', () => {
    const r = results.get('approved-visa-tcp');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(uuiOf('approved-visa-tcp')).toMatchObject({ res: 'approved', ref: 'INV-87', amt: '725', last4: '4242' });
  });

  it('approved Amex with a 4-digit security code, PAN ending by itself at 15 digits', () => {
    expect(results.get('approved-amex')?.exitCode, results.get('approved-amex')?.output).toBe(0);
    expect(uuiOf('approved-amex')).toMatchObject({ res: 'approved', amt: '12000', brand: 'amex', last4: '0005' });
  });

  it('declined, then approved with a second card', () => {
    expect(results.get('declined-then-approved')?.exitCode, results.get('declined-then-approved')?.output).toBe(0);
    expect(uuiOf('declined-then-approved')).toMatchObject({ res: 'approved', last4: '4242', att: '2' });
  });

  it('max declines goes to the per-outcome target', () => {
    const r = results.get('max-declines');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toMatch(/^<sip:\+18005550199@127\.0\.0\.1\?/);
    expect(uuiOf('max-declines')).toMatchObject({ res: 'max-declines' });
  });

  it('amount below the minimum is refused, then a corrected amount is charged', () => {
    const r = results.get('amount-below-minimum-then-corrected');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(uuiOf('amount-below-minimum-then-corrected')).toMatchObject({ res: 'approved', amt: '2550', src: 'caller' });
  });

  it('a UUI amount in a currency the profile does not accept is refused: handed back at once with res=error', () => {
    const r = results.get('uui-currency-differs');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toMatch(/^<sip:\+18005550100@127\.0\.0\.1\?User-to-User=00/);
    expect(uuiOf('uui-currency-differs')).toEqual({ res: 'error', why: 'currency-not-accepted', ref: 'INV-88', cur: 'USD', att: '0' });
  });

  it('1 pressed while the amount is announced answers the menu; the card typed after it is charged', async () => {
    const r = results.get('early-confirm');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(uuiOf('early-confirm')).toMatchObject({ res: 'approved', amt: '1200', last4: '4242', att: '1' });
    if (external) return;
    const [stored] = await app!.store.getByConversationId('cnv-early-confirm');
    expect(stored?.attempts).toEqual({ charges: 1, declines: 0, invalidEntries: 0 });
  });

  it('not identified: handed back at once without asking for a card', () => {
    expect(results.get('not-identified')?.exitCode, results.get('not-identified')?.output).toBe(0);
    expect(uuiOf('not-identified')).toMatchObject({ res: 'not-identified', ref: 'INV-82' });
  });

  it("agent mode returns to the agent's number", () => {
    const r = results.get('agent-mode');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toMatch(/^<sip:\+33140000000@genesys\.example\?User-to-User=00/);
    expect(uuiOf('agent-mode')).toMatchObject({ res: 'approved', last4: '4242' });
  });

  it('caller hangs up during card entry: no charge, no REFER, outcome hangup', async () => {
    const r = results.get('caller-hangup');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toBeUndefined();
    if (external) return;
    const stored = await app!.store.getByConversationId('cnv-caller-hangup');
    expect(stored.map((s) => s.outcome)).toEqual(['hangup']);
    expect(stored[0]?.attempts.charges).toBe(0);
  });

  it('caller hangs up while the PSP works: the charge completes and is recorded, no REFER', async () => {
    const r = results.get('hangup-during-charge');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toBeUndefined();
    if (external) return;
    expect(slowPsp!.charges().filter((c) => c.reference === 'INV-86')).toHaveLength(1);
    const stored = await app!.store.getByConversationId('cnv-hangup-during-charge');
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ outcome: 'approved', last4: '4242', handBack: { status: 'skipped' } });
  });

  it('REFER refused: the caller is told, then BYE with a Reason header', () => {
    const r = results.get('refer-refused');
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.byeReason).toMatch(/^SIP ?;\s*cause=403/);
  });

  it('results are readable over the admin API by reference and conversation id', async () => {
    if (external) return;
    const base = `http://127.0.0.1:${ADMIN_PORT}`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const byRef = (await (await fetch(`${base}/v1/results?reference=INV-77`, { headers: auth })).json()) as { results?: unknown[] } | unknown[];
    const list = Array.isArray(byRef) ? byRef : (byRef.results ?? []);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ outcome: 'approved', last4: '4242', brand: 'visa', conversationId: 'cnv-approved-visa', handBack: { status: 'accepted' } });
    expect((await fetch(`${base}/v1/results?reference=INV-77`)).status).toBe(401);
    const refused = await app!.store.getByConversationId('cnv-refer-refused');
    expect(refused[0]?.handBack?.status).toBe('failed');
  });

  it('the run logged no errors (a missing prompt or a failed store write would show here)', async () => {
    if (external) return;
    const lines = (await logOnceItHas(join(dir, 'pay-ivr.log'), 'hand-back REFER done', 11)).trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    expect(lines.filter((l) => l.msg === 'hand-back REFER done')).toHaveLength(11);
  });

  it('no card digits in anything the run wrote: logs, SIPp traces, Redis, results', async () => {
    const texts = filesUnder([dir, ...[...results.values()].map((r) => r.dir)]);
    if (!external) {
      const c = new Redis({ port: REDIS_PORT, host: '127.0.0.1' });
      const fromRedis = await redisTexts(c);
      c.disconnect();
      expect(fromRedis.length).toBeGreaterThan(0);
      texts.push(...fromRedis, { where: 'metrics', text: await app!.metrics.text() });
    }
    const log = texts.find((t) => t.where.endsWith('pay-ivr.log'));
    if (!external) expect(log?.text.length ?? 0).toBeGreaterThan(1000);
    expect(cardDigitHits(texts, CARD_SECRETS)).toEqual([]);
  });
});
