import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger, silentLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { isPayIvrError } from '../src/errors.js';
import type { CaptureSnapshot } from '../src/assist/service.js';
import { FakeCaptureHost, FakeEdgeCall } from './support/fake-edge.js';
import { SseReader } from './support/assist-harness.js';
import { WriterDouble, attributesOf } from './support/write-back-doubles.js';
import { cardDigitHits, filesUnder } from './support/run-texts.js';
import { chromium } from 'playwright-core';
import { requireTool } from './support/tools.js';

/**
 * The write-back in the whole process (genesys.platform.enabled, a writer double in place of the
 * Platform API client): an agent-assisted capture's result reaches its conversation; while
 * Genesys is down the node stays ready, /ready and the log show the queue, and everything goes
 * out once Genesys answers again. Ports (lane A): SIP 23121, admin 23122, sandbox PSP 23123,
 * RTP 23200-23299.
 */

const API_KEY = 'wb-assist-key-0123456789abcdef';
const ADMIN_TOKEN = 'wb-admin-token-0123456789abcdef';
const BASE = 'http://127.0.0.1:23122';
const CARD = '5555555555554444';
let app: App | undefined;
let dir: string;
const host = new FakeCaptureHost();
const writer = new WriterDouble();

function config(extra: Record<string, unknown> = {}): ReturnType<typeof parseConfig> {
  return parseConfig({
    journal: { dataDir: join(dir, 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 23121 }] },
    rtp: { host: '127.0.0.1', portMin: 23200, portMax: 23299, workers: 0 },
    admin: { host: '127.0.0.1', port: 23122, apiToken: ADMIN_TOKEN },
    edge: { assist: { apiKeys: [API_KEY], dtmfSecurity: 'silence' } },
    genesys: { platform: { enabled: true, delivery: { retryBaseMs: 100, maxRetryMs: 400, maxAttempts: 1000, maxAgeMs: 600_000 } } },
    profiles: { default: { currency: 'USD', psp: { type: 'sandbox', face: 'adyen', listenPort: 23123 } } },
    log: { level: 'debug' },
    ...extra,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-wb-app-'));
  app = await startApp(config(), createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }), {
    captureHost: host,
    participantData: () => ({ writer, attributesOf }),
  });
}, 30_000);

afterAll(async () => {
  await app?.stop();
});

async function capture(sessionId: string, conversationId: string, reference: string): Promise<void> {
  const call = host.add(new FakeEdgeCall(sessionId, { conversationId }));
  const r = await fetch(`${BASE}/v1/assist/captures`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sessionId, amount: 2500, reference }),
  });
  expect(r.status).toBe(201);
  const s = (await r.json()) as { captureId: string; panelToken: string };
  const events = new SseReader(`${BASE}/v1/assist/captures/${s.captureId}/events`, `Bearer ${s.panelToken}`);
  call.press(CARD + '0130' + '123');
  await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready');
  expect((await fetch(`${BASE}/v1/assist/captures/${s.captureId}/charge`, { method: 'POST', headers: { authorization: `Bearer ${s.panelToken}` } })).status).toBe(202);
  await events.waitFor((e) => e.type === 'ended');
}

async function ready(): Promise<{ status: number; body: { ready: boolean; genesysWriteBack?: { state: string; queued: number; deadLetters: number } } }> {
  const r = await fetch(`${BASE}/ready`);
  return { status: r.status, body: (await r.json()) as never };
}

describe('Genesys write-back in the app', () => {
  it('enabled without a participant data writer: the node refuses to start, with a coded error', async () => {
    const other = mkdtempSync(join(tmpdir(), 'payivr-wb-app-nowriter-'));
    const err = await startApp(parseConfig({ journal: { dataDir: join(other, 'data') }, admin: { enabled: false }, genesys: { platform: { enabled: true } }, profiles: { default: { currency: 'USD', psp: { type: 'sandbox' } } } }), silentLogger).catch((e: unknown) => e);
    expect(isPayIvrError(err, 'ERR_CONFIG_INVALID')).toBe(true);
    expect(String((err as Error).message)).toContain('genesys.platform.enabled');
  });

  it("an agent-assisted capture's result is written onto its conversation, the final record last", async () => {
    await capture('edge-session-wb-00001', 'cnv-wb-1', 'INV-WB-1');
    await expect.poll(() => app!.writeBack!.queue.status().queued, { timeout: 10_000 }).toBe(0);
    const mine = writer.written().filter((c) => c.conversationId === 'cnv-wb-1');
    expect(mine.at(-1)?.attributes).toMatchObject({ 'payivr.outcome': 'approved', 'payivr.last4': '4444', 'payivr.stage': 'ended', 'payivr.mode': 'agent' });
    // Never an older record after the newer one.
    expect(mine.map((c) => c.attributes['payivr.stage'])).toEqual(mine.length === 2 ? ['charged', 'ended'] : ['ended']);
    const log = readFileSync(join(dir, 'pay-ivr.log'), 'utf8');
    expect(log).toMatch(/"conversationId":"cnv-wb-1","key":"[^"]+#\d+".*"msg":"genesys write-back delivered"/);
  });

  it('Genesys down: payments go on, /ready stays 200 and shows the queue; once Genesys answers, every write goes out in order', async () => {
    writer.answer = () => ({ kind: 'retry', why: '503 Service Unavailable' });
    await capture('edge-session-wb-00002', 'cnv-wb-2', 'INV-WB-2');
    await capture('edge-session-wb-00003', 'cnv-wb-3', 'INV-WB-3');
    const during = await ready();
    expect(during.status).toBe(200);
    expect(during.body.ready).toBe(true);
    expect(during.body.genesysWriteBack).toMatchObject({ state: 'backing-off', deadLetters: 0 });
    expect(during.body.genesysWriteBack!.queued).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${BASE}/metrics`)).text();
    expect(metrics).toMatch(/pay_ivr_genesys_writeback_queued [2-9]/);

    writer.answer = () => ({ kind: 'written' });
    await expect.poll(() => app!.writeBack!.queue.status().queued, { timeout: 15_000 }).toBe(0);
    for (const conv of ['cnv-wb-2', 'cnv-wb-3']) {
      const mine = writer.written().filter((c) => c.conversationId === conv);
      expect(mine.at(-1)?.attributes).toMatchObject({ 'payivr.outcome': 'approved', 'payivr.stage': 'ended' });
    }
    expect((await ready()).body.genesysWriteBack).toMatchObject({ state: 'ok', queued: 0, deadLetters: 0 });
    const log = readFileSync(join(dir, 'pay-ivr.log'), 'utf8');
    expect(log).toContain('genesys write-back failing: writes stay queued and are retried');
  });

  it('the reports page lists a dead letter (conversation, call, outcome, last error, tries); Retry writes it once Genesys takes it', async () => {
    writer.answer = (c) => (c.conversationId === 'cnv-wb-4' ? { kind: 'rejected', why: 'participant not found', status: 404 } : { kind: 'written' });
    await capture('edge-session-wb-00004', 'cnv-wb-4', 'INV-WB-4');
    await expect.poll(() => app!.writeBack!.queue.status(), { timeout: 10_000 }).toMatchObject({ queued: 0, deadLetters: 1 });
    const callRef = app!.writeBack!.queue.deadLetters()[0]!.callRef;
    const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'payivr-chromium-')), {
      executablePath: process.env.PAYIVR_CHROMIUM ?? requireTool('chromium'),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const p = context.pages()[0] ?? (await context.newPage());
      await p.goto(`${BASE}/`);
      await p.fill('#token', ADMIN_TOKEN);
      await p.click('#signin-form button[type=submit]');
      await p.locator('#writeback').waitFor({ state: 'visible' });
      const row = p.locator(`#wb-dead tr[data-dead-letter="${callRef}"]`);
      await row.waitFor({ state: 'visible' });
      const cells = await row.locator('td').allTextContents();
      expect(cells.slice(0, 5)).toEqual(['cnv-wb-4', callRef, 'approved', 'rejected: 404 participant not found', '1']);
      expect(await p.textContent('#wb-queue')).toContain('1 dead letters');
      writer.answer = () => ({ kind: 'written' });
      await row.locator('button', { hasText: 'Retry' }).click();
      await p.locator('#wb-dead tr.empty').waitFor({ state: 'visible' });
      await expect.poll(() => app!.writeBack!.queue.status(), { timeout: 10_000 }).toMatchObject({ queued: 0, deadLetters: 0 });
      expect(writer.written().filter((c) => c.conversationId === 'cnv-wb-4').at(-1)?.attributes).toMatchObject({ 'payivr.outcome': 'approved', 'payivr.stage': 'ended' });
    } finally {
      await context.close();
    }
  }, 60_000);

  it('no card digits in the spool, the log or what was sent to Genesys', async () => {
    await app?.stop();
    app = undefined;
    const texts = [...filesUnder([dir]), { where: 'writes', text: JSON.stringify(writer.calls) }];
    expect(texts.some((t) => t.where.endsWith('journal-spool.jsonl') && t.text.includes('"gw:a:'))).toBe(true);
    expect(cardDigitHits(texts, [CARD])).toEqual([]);
  });
});
