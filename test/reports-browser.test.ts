/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import { keysEndMs, type DtmfStep } from './support/dtmf-pcap.js';
import { CONFIRM_AMOUNT } from './support/payment-steps.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { requireTool } from './support/tools.js';
import { cardDigitHits, filesUnder, redisTexts } from './support/run-texts.js';
import { e2eNodeConfig, e2eProfile } from './support/app-config.js';

/**
 * The reports page in a real browser (Debian's chromium driven by playwright-core): sign in with
 * the API token, place SIPp payment calls as Genesys, see them live (server-sent events), then in
 * the history; the page's numbers equal the API's. Screenshots go to a temporary folder, or to docs/img/ with PAYIVR_SCREENSHOTS=docs/img (docs/reports.md).
 * Everything the run produced (API answers, exports, pages, logs, Redis, metrics) is then searched
 * for the test card digits.
 */

const SIP_PORT = 25460;
const ADMIN_PORT = 19401;
const REDIS_PORT = 19402;
const TOKEN = 'reports-token-0123456789abcdef';
const BASE = `http://127.0.0.1:${ADMIN_PORT}`;
/**
 * The page's time zone: Paris, unless its midnight is less than 20 minutes away (the calls and
 * the checks of "today" must fall on one local day); then Tokyo, 8 hours away.
 */
const TZ = ((): string => {
  const h = Number(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date()).replace(':', '.'));
  return h >= 23.4 ? 'Asia/Tokyo' : 'Europe/Paris';
})();
/** Screenshots: a temporary folder; `PAYIVR_SCREENSHOTS=docs/img` refreshes the ones the docs show. */
const SHOTS = process.env.PAYIVR_SCREENSHOTS ?? join(tmpdir(), 'payivr-screenshots');

const VISA = '4242424242424242';
const AMEX = '378282246310005';
const DO_NOT_HONOR = '4000000000000002';
const NO_FUNDS = '4000000000009995';
const CARD_SECRETS = [VISA, AMEX, DO_NOT_HONOR, NO_FUNDS, VISA.slice(0, 12), AMEX.slice(0, 11), DO_NOT_HONOR.slice(0, 12), NO_FUNDS.slice(0, 12)];
const EXPIRY = '1234';

const DECLINE_MS = 9_000;

function card(pan: string, cvc: string, endWithHash = true): DtmfStep[] {
  return [{ keys: endWithHash ? `${pan}#` : pan }, { pauseMs: 600 }, { keys: '1' }, { pauseMs: 600 }, { keys: EXPIRY }, { pauseMs: 600 }, { keys: '1' }, { pauseMs: 600 }, { keys: cvc }];
}
const confirmAmount = CONFIRM_AMOUNT;

interface Case {
  name: string;
  uui: string;
  scenario?: 'payment' | 'caller-hangup';
  hangupMs?: number;
  steps: DtmfStep[];
}

const CASES: Case[] = [
  { name: 'approved-visa', uui: 'acct=R-1|amt=49.90|cur=USD|ref=RPT-1', steps: [...confirmAmount, ...card(VISA, '737')] },
  { name: 'approved-amex', uui: 'acct=R-2|amt=120.00|cur=USD|ref=RPT-2', steps: [...confirmAmount, ...card(AMEX, '7373', false)] },
  // Declined (insufficient funds), then "2": no other card.
  { name: 'declined', uui: 'acct=R-3|amt=15.00|ref=RPT-3', steps: [...confirmAmount, ...card(NO_FUNDS, '737'), { pauseMs: DECLINE_MS }, { keys: '2' }] },
  // Do not honour, then insufficient funds: the second decline ends it (maxDeclines 2).
  {
    name: 'max-declines',
    uui: 'acct=R-4|amt=15.00|ref=RPT-4',
    steps: [...confirmAmount, ...card(DO_NOT_HONOR, '737'), { pauseMs: DECLINE_MS }, { keys: '1' }, { pauseMs: 800 }, ...card(NO_FUNDS, '737')],
  },
  { name: 'hangup-in-card-number', scenario: 'caller-hangup', hangupMs: keysEndMs([...confirmAmount, { keys: '42424242' }]) + 1_800, uui: 'acct=R-5|amt=10.00|ref=RPT-5', steps: [...confirmAmount, { keys: '42424242' }] },
  { name: 'not-identified', uui: 'acct=R-6|amt=10.00|ref=RPT-6|ident=0', steps: [] },
];

let redis: RedisServer | undefined;
let app: App | undefined;
let context: BrowserContext | undefined;
let page: Page | undefined;
let dir: string;
const produced: { where: string; text: string }[] = [];
const requestedUrls: string[] = [];
const results = new Map<string, GenesysCallResult>();

const auth = { authorization: `Bearer ${TOKEN}` };
async function apiJson<T>(path: string): Promise<T> {
  const r = await fetch(`${BASE}${path}`, { headers: auth });
  const text = await r.text();
  produced.push({ where: `api ${path}`, text });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

async function snapshotPage(where: string): Promise<void> {
  if (page !== undefined) produced.push({ where: `page ${where}`, text: await page.content() });
}

interface Summary {
  total: { count: number; approved: number; amount: Record<string, number>; outcomes: Record<string, number>; declines: Record<string, number>; approvalRate: number | null };
  groups: { key: string; count: number }[];
}
interface Funnel {
  calls: number;
  steps: { step: string; reached: number; completed: number; ended: number; abandoned: number; invalidEntries: number; timeouts: number }[];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-reports-'));
  mkdirSync(SHOTS, { recursive: true });
  redis = await startRedisServer(REDIS_PORT);
  const config = parseConfig(
    e2eNodeConfig({
      dir,
      sip: [{ transport: 'udp', port: SIP_PORT }],
      rtp: [35000, 35999],
      profiles: { default: e2eProfile() },
      rest: { store: { type: 'redis', redisUrl: redis.url, keyPrefix: 'rpt:' }, admin: { host: '127.0.0.1', port: ADMIN_PORT, apiToken: TOKEN } },
    }),
  );
  app = await startApp(config, createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }));
  // A fresh profile directory per run: nothing from an earlier run (cookies, cache) is reused.
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'payivr-chromium-')), {
    executablePath: process.env.PAYIVR_CHROMIUM ?? requireTool('chromium'),
    viewport: { width: 1280, height: 900 },
    timezoneId: TZ,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('request', (r) => requestedUrls.push(r.url()));
}, 60_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await app?.stop();
  await redis?.stop();
});

describe('reports page in a headless browser', () => {
  it('refuses a wrong token, then signs in with the right one into an HttpOnly SameSite=Strict cookie session', async () => {
    const p = page as Page;
    await p.goto(`${BASE}/`);
    await p.locator('#signin').waitFor({ state: 'visible' });
    await p.locator('#signin').screenshot({ path: join(SHOTS, 'reports-signin.png') });
    await p.fill('#token', 'not-the-token-000000');
    await p.click('#signin-form button[type=submit]');
    await expect.poll(() => p.textContent('#signin-error')).toBe('Wrong token.');
    await p.fill('#token', TOKEN);
    await p.click('#signin-form button[type=submit]');
    await p.locator('#reports').waitFor({ state: 'visible' });
    await p.selectOption('#tz', TZ);
    const cookies = await (context as BrowserContext).cookies();
    expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }))).toEqual([{ name: 'payivr_session', httpOnly: true, sameSite: 'Strict' }]);
    await expect.poll(() => p.textContent('#stream-state')).toBe('live');
  });

  it('shows the SIPp calls live with their dialogue step, then ends them', async () => {
    const p = page as Page;
    const runs = CASES.map(async (c, i) => {
      await new Promise((r) => setTimeout(r, i * 200));
      const r = await runGenesysCall({
        scenario: c.scenario ?? 'payment',
        target: `127.0.0.1:${SIP_PORT}`,
        uui: c.uui,
        conversationId: `cnv-${c.name}`,
        steps: c.steps,
        hangupMs: c.hangupMs,
        localPort: 25500 + i * 4,
        mediaPort: 36000 + i * 4,
        timeoutS: 150,
      });
      results.set(c.name, r);
    });
    // Live: at least four calls in progress at once, each showing the step it is in.
    await p.waitForFunction(() => document.querySelectorAll('#live-calls tr[data-call]').length >= 4, undefined, { timeout: 30_000 });
    await p.waitForFunction(() => Array.from(document.querySelectorAll('#live-calls td[data-step]')).some((td) => (td as HTMLElement).dataset.step === 'amount-offer'), undefined, { timeout: 30_000 });
    // A call listed in the instant after its answer has no step yet (its first prompt comes next):
    // the API shows every call with its step once each has taken one.
    await expect
      .poll(async () => {
        const live = await apiJson<{ calls: { id: string; step?: string }[] }>('/v1/calls');
        return live.calls.length >= 4 && live.calls.every((c) => typeof c.step === 'string');
      }, { timeout: 10_000, interval: 100 })
      .toBe(true);
    // Card entry reached while the calls run.
    await p.waitForFunction(() => Array.from(document.querySelectorAll('#live-calls td[data-step]')).some((td) => (td as HTMLElement).dataset.step === 'card-number'), undefined, { timeout: 60_000 });
    await p.locator('#live').screenshot({ path: join(SHOTS, 'reports-live.png') });
    await snapshotPage('live');
    await Promise.all(runs);
    await app?.idle();
    for (const c of CASES) expect(results.get(c.name)?.exitCode, `${c.name}: ${results.get(c.name)?.output}`).toBe(0);
    // The page learns of the ends from the event stream, without a reload.
    await p.waitForFunction(() => document.querySelectorAll('#live-calls tr[data-call]').length === 0, undefined, { timeout: 20_000 });
    await expect.poll(() => p.textContent('[data-today="count"]'), { timeout: 20_000 }).toBe(String(CASES.length));
    expect(await p.locator('#events li[data-event="ended"]').count()).toBe(CASES.length);
  }, 240_000);

  it("today's figures on the page equal the API's, and the API's equal what the calls did", async () => {
    const p = page as Page;
    const s = await apiJson<Summary>(`/v1/reports/summary?tz=${encodeURIComponent(TZ)}`);
    expect(s.total.count).toBe(6);
    expect(s.total.outcomes).toMatchObject({ approved: 2, declined: 1, 'max-declines': 1, hangup: 1, 'not-identified': 1 });
    expect(s.total.amount).toEqual({ USD: 16_990 });
    expect(s.total.declines).toMatchObject({ 'insufficient-funds': 2, 'do-not-honor': 1 });
    // 2 approved of the 4 calls that reached the PSP.
    expect(s.total.approvalRate).toBe(0.5);
    const today = async (k: string): Promise<string | null> => p.textContent(`[data-today="${k}"]`);
    expect(await today('count')).toBe(String(s.total.count));
    expect(await today('approved')).toBe(String(s.total.approved));
    expect(await today('amount')).toBe('169.90 USD');
    expect(await today('approvalRate')).toBe('50.0 %');
    expect(await today('declines')).toBe(String(Object.values(s.total.declines).reduce((a, b) => a + b, 0)));
    expect(await today('hangup')).toBe('1');
    for (const [o, n] of Object.entries(s.total.outcomes)) {
      if (n > 0) expect(await p.textContent(`#today-outcomes tr[data-outcome="${o}"] td.num`)).toBe(String(n));
    }
    await p.locator('#today').screenshot({ path: join(SHOTS, 'reports-today.png') });
  });

  it('history charts, funnel and declines by class on the page equal the API', async () => {
    const p = page as Page;
    await p.selectOption('#period', 'today');
    await p.waitForFunction(() => document.querySelectorAll('#chart-count g[data-category]').length === 24, undefined, { timeout: 10_000 });
    // The page's own range (today, every hour of it), as its export link carries it.
    const query = ((await p.getAttribute('#export-csv', 'href')) ?? '').split('?')[1] ?? '';
    expect(new URLSearchParams(query).get('tz')).toBe(TZ);
    const s = await apiJson<Summary>(`/v1/reports/summary?${query}&groupBy=hour`);
    const bars = await p.$$eval('#chart-count g[data-category]', (gs) => gs.map((g) => Number(g.getAttribute('data-total'))));
    expect(bars).toEqual(s.groups.map((g) => g.count));
    expect(bars.reduce((a, b) => a + b, 0)).toBe(6);

    const f = await apiJson<Funnel>(`/v1/reports/funnel?${query}`);
    expect(f.calls).toBe(6);
    const byStep = Object.fromEntries(f.steps.map((r) => [r.step, r]));
    // What the six calls did: all answered; five heard the amount offer (not the unidentified one);
    // four went on to the PSP; one hung up at the card number.
    expect(byStep.answer).toMatchObject({ reached: 6, completed: 6 });
    expect(byStep['amount-offer']).toMatchObject({ reached: 5, completed: 5 });
    expect(byStep['card-number']).toMatchObject({ reached: 5, abandoned: 1 });
    expect(byStep.charging).toMatchObject({ reached: 4, completed: 4 });
    expect(byStep['other-card']).toMatchObject({ reached: 2 });
    expect(byStep.handback).toMatchObject({ reached: 5, completed: 5 });
    const pageRows = await p.$$eval('#funnel-table tbody tr', (trs) =>
      trs.map((tr) => {
        const col = (c: string): number => Number(tr.querySelector(`[data-col="${c}"]`)?.textContent);
        return { step: (tr as HTMLElement).dataset.step, reached: col('reached'), completed: col('completed'), ended: col('ended'), abandoned: col('abandoned'), invalidEntries: col('invalidEntries'), timeouts: col('timeouts') };
      }),
    );
    expect(pageRows).toEqual(f.steps.filter((r) => r.reached > 0));

    const declines = await p.$$eval('#chart-declines g[data-label]', (gs) => Object.fromEntries(gs.map((g) => [g.getAttribute('data-label'), Number(g.getAttribute('data-value'))])));
    expect(declines).toEqual(s.total.declines);
    await p.locator('#history').screenshot({ path: join(SHOTS, 'reports-history.png') });
    await p.locator('#funnel').screenshot({ path: join(SHOTS, 'reports-funnel.png') });
    await p.locator('#declines').screenshot({ path: join(SHOTS, 'reports-declines.png') });
    await snapshotPage('history');

    // The 7-day view shows the same calls in today's bar.
    await p.selectOption('#period', '7d');
    await p.waitForFunction(() => document.querySelectorAll('#chart-count g[data-category]').length === 7, undefined, { timeout: 10_000 });
    const week = await p.$$eval('#chart-count g[data-category]', (gs) => gs.map((g) => Number(g.getAttribute('data-total'))));
    expect(week.slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(week[6]).toBe(6);
  });

  it('exports CSV and NDJSON of the segment records', async () => {
    const csvResp = await fetch(`${BASE}/v1/reports/export.csv?tz=${encodeURIComponent(TZ)}`, { headers: auth });
    expect(csvResp.headers.get('content-type')).toMatch(/^text\/csv/);
    const csv = await csvResp.text();
    produced.push({ where: 'export.csv', text: csv });
    expect(csv.trimEnd().split('\r\n')).toHaveLength(7);
    const nd = await (await fetch(`${BASE}/v1/reports/export.ndjson?tz=${encodeURIComponent(TZ)}`, { headers: auth })).text();
    produced.push({ where: 'export.ndjson', text: nd });
    const recs = nd.trimEnd().split('\n').map((l) => JSON.parse(l) as { outcome: string; last4?: string; declineClasses: string[]; pspMs: number[] });
    expect(recs).toHaveLength(6);
    expect(recs.filter((r) => r.outcome === 'approved').map((r) => r.last4).sort()).toEqual(['0005', '4242']);
    expect(recs.find((r) => r.outcome === 'max-declines')?.declineClasses).toEqual(['do-not-honor', 'insufficient-funds']);
    expect(recs.filter((r) => r.pspMs.length > 0)).toHaveLength(4);
    // The page's export link downloads the same thing with the session cookie.
    const href = await (page as Page).getAttribute('#export-csv', 'href');
    expect(href).toMatch(/^\/v1\/reports\/export\.csv\?/);
  });

  it('/metrics carries the funnel counters and the segment duration histogram', async () => {
    const text = await (await fetch(`${BASE}/metrics`)).text();
    produced.push({ where: 'metrics', text });
    expect(text).toMatch(/pay_ivr_step_reached_total\{step="answer"\} 6\b/);
    expect(text).toMatch(/pay_ivr_step_abandoned_total\{step="card-number"\} 1\b/);
    expect(text).toMatch(/pay_ivr_segment_duration_seconds_count\{outcome="approved"\} 2\b/);
  });

  it('signs out: the session cookie no longer opens the API; the token was never in a URL', async () => {
    const p = page as Page;
    const cookie = (await (context as BrowserContext).cookies())[0]?.value ?? '';
    expect((await fetch(`${BASE}/v1/calls`, { headers: { cookie: `payivr_session=${cookie}` } })).status).toBe(200);
    await p.click('#logout');
    await p.locator('#signin').waitFor({ state: 'visible' });
    expect((await fetch(`${BASE}/v1/calls`, { headers: { cookie: `payivr_session=${cookie}` } })).status).toBe(401);
    expect(requestedUrls.length).toBeGreaterThan(10);
    expect(requestedUrls.filter((u) => u.includes(TOKEN))).toEqual([]);
    await snapshotPage('signed-out');
  });

  it('no card digits in any report, export, page, log, SIPp trace or Redis key the run produced', async () => {
    produced.push(...filesUnder([dir, ...[...results.values()].map((r) => r.dir)]));
    for (const f of ['index.html', 'app.js', 'charts.js', 'style.css']) produced.push({ where: `asset ${f}`, text: await (await fetch(`${BASE}/${f === 'index.html' ? '' : `assets/${f}`}`)).text() });
    const c = new Redis({ port: REDIS_PORT, host: '127.0.0.1' });
    const keys = await c.keys('rpt:segment*');
    expect(keys.length).toBe(7); // six records and the index
    produced.push(...(await redisTexts(c)));
    c.disconnect();
    // /v1/calls, today's summary, the hourly summary and the funnel (each scanned; /v1/calls is
    // polled until every live call shows its first step, so it may have been read more than once).
    expect(new Set(produced.filter((t) => t.where.startsWith('api ')).map((t) => t.where)).size).toBe(4);
    expect(produced.filter((t) => t.where.startsWith('page ')).length).toBe(3);
    writeFileSync(join(dir, 'scanned.txt'), produced.map((t) => t.where).join('\n'));
    expect(cardDigitHits(produced, CARD_SECRETS)).toEqual([]);
  });
});
