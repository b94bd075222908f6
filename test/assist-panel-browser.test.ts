/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { FakeEdgeCall } from './support/fake-edge.js';
import { ASSIST_KEY, startAssistHarness, type AssistHarness } from './support/assist-harness.js';
import { openPanelBrowser } from './support/browser.js';

/**
 * The Agent Assist panel in Debian's chromium (playwright-core): opened with its capture token in
 * the URL fragment, as a Genesys Script Web Page would; the caller's keys (an in-memory relayed
 * call) show up live as dots, the brand and last 4; the agent clears a field and charges; the
 * result shows. Then every page DOM, network request and answer, log line, journal and store
 * record is searched for the card digits. Ports: admin 52111, sandbox PSP 52112.
 */

const VISA = '4242424242424242';
const EXPIRY = '1230';
const CVC = '737';
const CARD_SECRETS = [VISA, VISA.slice(0, 12), `${EXPIRY}${CVC}`];
/** Screenshots: a temporary folder; `PAYIVR_SCREENSHOTS=docs/img` refreshes the ones the docs show. */
const SHOTS = process.env.PAYIVR_SCREENSHOTS ?? join(tmpdir(), 'payivr-screenshots');

let h: AssistHarness;
let context: BrowserContext | undefined;
let page: Page;
const produced: { where: string; text: string }[] = [];
const requests: { url: string; authorization: string | undefined }[] = [];
const pending: { url: string; done: Promise<boolean> }[] = [];
/** Event streams as the browser received them, by CDP request id. */
let streamed = new Map<string, { url: string; text: string }>();

beforeAll(async () => {
  h = await startAssistHarness({ adminPort: 52111, pspPort: 52112 });
  mkdirSync(SHOTS, { recursive: true });
  ({ context, page, streamed } = await openPanelBrowser(mkdtempSync(join(tmpdir(), 'payivr-assist-chromium-'))));
  page.on('request', (r) => {
    requests.push({ url: r.url(), authorization: r.headers().authorization });
    const body = r.postData();
    if (body !== null) produced.push({ where: `request body ${r.url()}`, text: body });
  });
  page.on('response', (r) => {
    if (r.url().includes('/events')) return; // read through CDP, above
    // The event stream's body is complete once the capture has ended (the server closes it).
    pending.push({
      url: r.url(),
      done: r
        .body()
        .then((b) => {
          produced.push({ where: `response ${r.status()} ${r.url()}`, text: b.toString('latin1') });
          return true;
        })
        .catch(() => false),
    });
  });
}, 60_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await h?.stop();
});

async function dom(where: string): Promise<void> {
  produced.push({ where: `dom ${where}`, text: await page.content() });
}

describe('agent panel in a headless browser', () => {
  it('shows the caller keying the card as dots, brand and last 4, clears a field, charges and shows the result', async () => {
    const call = h.host.add(new FakeEdgeCall('edge-session-panel-0001', { conversationId: 'cnv-panel' }));
    const r = await fetch(`${h.base}/v1/assist/captures`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ASSIST_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sessionId: call.sessionId, amount: 12_345, reference: 'INV-PANEL-7' }),
    });
    expect(r.status).toBe(201);
    const started = (await r.json()) as { captureId: string; panelToken: string; panelPath: string };
    const token = started.panelToken;

    const resp = await page.goto(`${h.base}${started.panelPath}`);
    const csp = resp?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain('frame-ancestors https://*.mypurecloud.com');
    await expect.poll(() => page.textContent('#stream-state')).toBe('live');
    // The fragment is gone from the address once read.
    expect(page.url()).toBe(`${h.base}/assist/panel`);
    expect(await page.textContent('#amount')).toBe('123.45 EUR');
    expect(await page.textContent('#reference')).toBe('INV-PANEL-7');
    expect(await page.getAttribute('#field-pan', 'data-current')).toBe('true');

    call.press('4242');
    await page.locator('#pan-dots[data-count="4"]').waitFor();
    expect(await page.textContent('#pan-dots')).toBe('\u2022'.repeat(4));
    expect(await page.textContent('#pan-brand')).toBe('visa');
    expect(await page.textContent('#pan-last4')).toBe('');
    await dom('typing');

    call.press(`${VISA.slice(4)}#`);
    await page.locator('#field-pan[data-status="valid"]').waitFor();
    expect(await page.textContent('#pan-dots')).toBe('\u2022'.repeat(16));
    expect(await page.textContent('#pan-last4')).toBe('\u2022\u2022\u2022\u2022 4242');
    expect(await page.getAttribute('#field-expiry', 'data-current')).toBe('true');

    // A wrong expiry start: the agent clears the field.
    call.press('13');
    await page.locator('#expiry-dots[data-count="2"]').waitFor();
    await page.click('#clear');
    await page.locator('#expiry-dots[data-count="0"]').waitFor();

    call.press(EXPIRY);
    await page.locator('#expiry-entered[data-entered="true"]').waitFor();
    expect(await page.isDisabled('#charge')).toBe(true);
    call.press(CVC);
    await page.locator('#securityCode-entered[data-entered="true"]').waitFor();
    await page.locator('#charge:not([disabled])').waitFor();
    await dom('ready');
    await page.locator('#panel').screenshot({ path: join(SHOTS, 'assist-panel-ready.png') });

    await page.click('#charge');
    await page.locator('#result-outcome[data-outcome="approved"]').waitFor();
    expect(await page.textContent('#result-outcome')).toBe('Payment approved');
    expect(await page.textContent('#result-brand')).toBe('visa');
    expect(await page.textContent('#result-last4')).toBe('\u2022\u2022\u2022\u2022 4242');
    expect(await page.textContent('#result-psp')).toMatch(/^pi_/);
    expect(await page.isDisabled('#charge')).toBe(true);
    expect(await page.isDisabled('#cancel')).toBe(true);
    await expect.poll(() => page.textContent('#stream-state')).toBe('closed');
    await dom('result');
    await page.locator('#panel').screenshot({ path: join(SHOTS, 'assist-panel-result.png') });
    await expect.poll(() => call.ops.includes('unblock')).toBe(true);
    // Every answer of this page read whole (the event stream ended with the result).
    const read = await Promise.all(pending.map(async (p) => ({ url: p.url, ok: await Promise.race([p.done, new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]) })));
    expect(read.filter((x) => !x.ok)).toEqual([]);
    pending.length = 0;

    // The token travelled in Authorization headers only, never in a URL.
    expect(requests.filter((q) => q.url.includes(token))).toEqual([]);
    const apiCalls = requests.filter((q) => q.url.includes('/v1/assist/'));
    expect(apiCalls.length).toBeGreaterThanOrEqual(3);
    expect(apiCalls.every((q) => q.authorization === `Bearer ${token}`)).toBe(true);
    // Nothing was fetched from anywhere else.
    expect(requests.filter((q) => !q.url.startsWith(h.base))).toEqual([]);
  });

  it('an expired or missing token shows a message and no capture', async () => {
    await page.goto(`${h.base}/assist/panel`);
    await expect.poll(() => page.textContent('#problem')).toContain('No capture token');
    // Another document (a fragment change alone would not load the page again).
    await page.goto('about:blank');
    await page.goto(`${h.base}/assist/panel#token=pt1.AAAAAAAAAAAAAAAAAAAAAAAA.1.x`);
    await expect.poll(() => page.textContent('#problem')).toContain('expired or is not valid');
    await dom('bad-token');
  });

  it('no card digits in the DOM, the network traffic, the logs, the journal or the stores', async () => {
    await Promise.all(pending.map((p) => Promise.race([p.done, new Promise((r) => setTimeout(r, 5_000))])));
    for (const s of streamed.values()) produced.push({ where: `event stream ${s.url}`, text: s.text });
    produced.push(...(await h.producedTexts()));
    expect(produced.filter((p) => p.where.startsWith('dom ')).length).toBe(4);
    // The event stream was captured whole (it ended with the result).
    const ended = produced.find((p) => p.where.startsWith('event stream') && p.text.includes('event: ended'));
    expect(ended?.text).toContain('"digits":16');
    expect(ended?.text).toContain('"last4":"4242"');
    expect(new RegExp(VISA).test(`x${VISA}x`)).toBe(true);
    for (const t of produced) {
      for (const secret of CARD_SECRETS) expect(t.text.includes(secret), `${secret.slice(0, 4)}... in ${t.where}`).toBe(false);
      expect(/"(pan|cvc|cvv|expiry|securityCode)"\s*:\s*"\d/.test(t.text), `card field in ${t.where}`).toBe(false);
    }
  });
});
