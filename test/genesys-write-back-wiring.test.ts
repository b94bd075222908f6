import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { silentLogger } from '../src/log.js';
import { Spool } from '../src/journal/spool.js';
import { PaymentJournal } from '../src/journal/journal.js';
import { LocalJournalBackend } from '../src/journal/local-backend.js';
import { Reconciler } from '../src/journal/reconciler.js';
import { endOrphanedCalls } from '../src/journal/orphans.js';
import { MemoryStore } from '../src/store/memory.js';
import { Metrics } from '../src/http/metrics.js';
import { startAdminServer, type AdminServer } from '../src/http/server.js';
import { WriteBackQueue } from '../src/genesys/platform/write-back.js';
import { WriteBackResultStore } from '../src/genesys/platform/write-back-store.js';
import type { PaymentGateway } from '../src/psp/types.js';
import type { TelephonyBackend } from '../src/telephony/types.js';
import { TestClock, WriterDouble, attributesOf } from './support/write-back-doubles.js';
import { capturedLogger, sampleResult } from './support/result-fixtures.js';

/**
 * Where the write-back meets the rest of the node: reconciliation and start-up recovery write
 * results through the write-back store, so their changes reach Genesys too; /ready, /metrics and
 * the dead-letter routes of the admin API show the queue.
 */

const TOKEN = 'wb-admin-token-0123456789abcdef';
const TEST_PAN = '4111111111111111';
const DELIVERY = { retryBaseMs: 1_000, maxRetryMs: 8_000, maxAttempts: 3, maxAgeMs: 3_600_000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(): { spool: Spool; writer: WriterDouble; clock: TestClock; queue: WriteBackQueue; store: WriteBackResultStore; journal: PaymentJournal; metrics: Metrics } {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-wbw-'));
  const spool = Spool.open({ path: join(dir, 'spool.jsonl'), maxBytes: 4 << 20 });
  const writer = new WriterDouble();
  const clock = new TestClock();
  const metrics = new Metrics();
  const queue = new WriteBackQueue({ spool, writer, attributesOf, delivery: DELIVERY, logger: silentLogger, events: metrics.writeBackEvents(), now: clock.read, setTimer: clock.setTimer });
  metrics.watchWriteBack(() => queue.status());
  queue.start();
  const journal = new PaymentJournal({ backend: new LocalJournalBackend(spool), spool, node: 'n1', logger: silentLogger });
  cleanups.push(async () => {
    await queue.close();
    await spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { spool, writer, clock, queue, store: new WriteBackResultStore(new MemoryStore(), queue), journal, metrics };
}

describe('results written by reconciliation and start-up recovery', () => {
  it('an outcome reconciliation settles is written after the call\'s own, and replaces it at Genesys', async () => {
    const { writer, queue, store, journal } = setup();
    const a = await journal.begin({ id: randomUUID(), idempotencyKey: 'idem-1', callRef: 'call-r', callId: 'c@x', psp: 'sandbox-stripe', profile: 'default', amount: 1234, currency: 'EUR', reference: 'INV-R', brand: 'visa', last4: '4242', attempt: 1 });
    journal.release(a.id);
    await store.saveResult(sampleResult('call-r', { conversationId: 'conv-r', outcome: 'unconfirmed', stage: 'ended', transactionId: undefined }));
    const gateway: PaymentGateway = {
      name: 'fake',
      charge: () => Promise.reject(new Error('not used')),
      lookup: async () => ({ status: 'approved', transactionId: 'ch_1', authCode: 'A1' }),
    };
    const reconciler = new Reconciler({ journal, results: store, gatewayFor: () => gateway, noRecordAfterMs: 60_000, logger: silentLogger });
    const settled = await reconciler.runOnce();
    expect(settled.map((e) => e.outcome)).toEqual(['approved']);
    await queue.settled();
    expect(writer.written().map((c) => [c.conversationId, c.attributes['payivr.outcome'], c.attributes['payivr.origin'] ?? 'call'])).toEqual([
      ['conv-r', 'unconfirmed', 'call'],
      ['conv-r', 'approved', 'reconciled'],
    ]);
  });

  it('kill -9 between the charge and any result: reconciliation writes the result, and it reaches the conversation kept in the attempt', async () => {
    const { writer, queue, store, journal } = setup();
    // The attempt was journaled before the send; the process died before the 'charged' record.
    const a = await journal.begin({ id: randomUUID(), idempotencyKey: 'idem-2', callRef: 'call-k', callId: 'k@x', psp: 'sandbox-stripe', profile: 'default', amount: 990, currency: 'EUR', reference: 'INV-K', brand: 'visa', last4: '4242', attempt: 1, conversationId: 'conv-k' });
    journal.release(a.id);
    const gateway: PaymentGateway = {
      name: 'fake',
      charge: () => Promise.reject(new Error('not used')),
      lookup: async () => ({ status: 'approved', transactionId: 'ch_2', authCode: 'A2' }),
    };
    await new Reconciler({ journal, results: store, gatewayFor: () => gateway, noRecordAfterMs: 60_000, logger: silentLogger }).runOnce();
    await queue.settled();
    expect(writer.written().map((c) => [c.conversationId, c.attributes['payivr.outcome'], c.attributes['payivr.origin'], c.attributes['payivr.last4']])).toEqual([['conv-k', 'approved', 'reconciled', '4242']]);
  });

  it('a call a crash left in progress (hang-up, no result) gets its result written onto the conversation at start', async () => {
    const { writer, queue, store, journal } = setup();
    await journal.saveDialog({
      callRef: 'call-o',
      backend: 'embedded',
      dialog: { callId: 'o@x' } as never,
      profile: 'default',
      mode: 'automated',
      currency: 'EUR',
      conversationId: 'conv-o',
      startedAt: new Date().toISOString(),
    });
    const backend = { name: 'drachtio' } as unknown as TelephonyBackend;
    expect(await endOrphanedCalls({ journal, results: store, backend, logger: silentLogger })).toBe(1);
    await queue.settled();
    expect(writer.written().map((c) => [c.conversationId, c.attributes['payivr.outcome'], c.attributes['payivr.stage']])).toEqual([['conv-o', 'error', 'ended']]);
  });

  it('a call a crash cut while its charge was with the PSP is written unconfirmed (maybe charged), never error, until reconciliation knows', async () => {
    const { writer, queue, store, journal } = setup();
    await journal.begin({ id: randomUUID(), idempotencyKey: 'idem-u', callRef: 'call-u', callId: 'u@x', psp: 'sandbox-stripe', profile: 'default', amount: 500, currency: 'EUR', reference: 'INV-U', brand: 'visa', last4: '4242', attempt: 1, conversationId: 'conv-u' });
    await journal.saveDialog({
      callRef: 'call-u',
      backend: 'embedded',
      dialog: { callId: 'u@x' } as never,
      profile: 'default',
      mode: 'automated',
      currency: 'EUR',
      conversationId: 'conv-u',
      startedAt: new Date().toISOString(),
    });
    const backend = { name: 'drachtio' } as unknown as TelephonyBackend;
    expect(await endOrphanedCalls({ journal, results: store, backend, logger: silentLogger })).toBe(1);
    await queue.settled();
    expect(writer.written().map((c) => [c.conversationId, c.attributes['payivr.outcome']])).toEqual([['conv-u', 'unconfirmed']]);
  });
});

describe('the admin API shows the write-back', () => {
  let server: AdminServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('/ready stays 200 while Genesys is down and shows the queue; /metrics counts; dead letters are listed, retried and dismissed with the token only', async () => {
    const { writer, clock, queue, store, metrics } = setup();
    const { logger, lines } = capturedLogger();
    server = await startAdminServer({
      config: { admin: { enabled: true, host: '127.0.0.1', port: 0, apiToken: TOKEN } },
      store,
      metrics,
      writeBack: queue,
      backendStatus: () => ({ ready: true, activeCalls: 0, genesysWriteBack: queue.status() }),
      logger,
    });
    const base = `http://127.0.0.1:${server.port}`;
    const auth = { authorization: `Bearer ${TOKEN}` };

    // Genesys down: two writes wait, one was refused outright.
    writer.answer = (c) => (c.conversationId === 'conv-gone' ? { kind: 'rejected', why: 'conversation not found', status: 404 } : { kind: 'retry', why: '503' });
    await store.saveResult(sampleResult('call-1', { conversationId: 'conv-1' }));
    await store.saveResult(sampleResult('call-2', { conversationId: 'conv-2', outcome: 'declined', declineClass: 'do-not-honor' }));
    await store.saveResult(sampleResult('call-gone', { conversationId: 'conv-gone', outcome: 'hangup' }));
    // Probes one write at a time while the others wait: the rejected one is found in turn.
    for (let i = 0; i < 5 && queue.status().deadLetters === 0; i++) {
      await queue.settled();
      clock.advance(8_000);
    }
    await queue.settled();
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ ready: true, genesysWriteBack: { state: 'backing-off', queued: 2, deadLetters: 1 } });
    expect((body.genesysWriteBack as { oldestAgeSeconds: number }).oldestAgeSeconds).toBeGreaterThanOrEqual(5);

    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('pay_ivr_genesys_writeback_queued 2');
    expect(text).toContain('pay_ivr_genesys_writeback_dead_letters 1');
    expect(text).toContain('pay_ivr_genesys_writeback_dead_lettered_total{reason="rejected"} 1');
    expect(text).toContain('pay_ivr_genesys_writeback_dead_lettered_total{reason="max-attempts"} 0');
    expect(text).toMatch(/pay_ivr_genesys_writeback_retried_total [1-9]/);
    expect(text).toContain('pay_ivr_genesys_writeback_written_total 0');
    expect(text).not.toContain('conv-');

    expect((await fetch(`${base}/v1/genesys/dead-letters`)).status).toBe(401);
    const list = (await (await fetch(`${base}/v1/genesys/dead-letters`, { headers: auth })).json()) as { queue: Record<string, unknown>; deadLetters: Record<string, unknown>[] };
    expect(list.queue).toMatchObject({ queued: 2, deadLetters: 1 });
    expect(list.deadLetters).toEqual([
      expect.objectContaining({ conversationId: 'conv-gone', callRef: 'call-gone', outcome: 'hangup', reason: 'rejected', lastError: '404 conversation not found', tries: 1, attributes: expect.arrayContaining(['payivr.outcome', 'payivr.last4', 'payivr.pspReference']) }),
    ]);

    // Genesys back: the queue empties; the operator retries the dead letter, then it is gone.
    writer.answer = () => ({ kind: 'written' });
    clock.advance(8_000);
    await queue.settled();
    expect(queue.status().queued).toBe(0);
    expect((await fetch(`${base}/v1/genesys/dead-letters/call-gone/retry`, { method: 'POST' })).status).toBe(401);
    const retried = await fetch(`${base}/v1/genesys/dead-letters/call-gone/retry`, { method: 'POST', headers: auth });
    expect(retried.status).toBe(200);
    expect(await retried.json()).toEqual({ result: 'queued' });
    await queue.settled();
    expect(writer.written().map((c) => c.conversationId)).toEqual(['conv-1', 'conv-2', 'conv-gone']);
    expect((await fetch(`${base}/v1/genesys/dead-letters/call-gone`, { method: 'DELETE', headers: auth })).status).toBe(404);

    // Dismiss: a second rejected write, then removed by the operator.
    writer.answer = () => ({ kind: 'rejected', why: 'forbidden', status: 403 });
    await store.saveResult(sampleResult('call-3', { conversationId: 'conv-3' }));
    await queue.settled();
    expect((await fetch(`${base}/v1/genesys/dead-letters/call-3`, { method: 'DELETE' })).status).toBe(401);
    expect((await fetch(`${base}/v1/genesys/dead-letters/call-3`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect(queue.status().deadLetters).toBe(0);
    const after = await (await fetch(`${base}/metrics`)).text();
    expect(after).toContain('pay_ivr_genesys_writeback_written_total 3');
    expect(after).toContain('pay_ivr_genesys_writeback_dead_letters 0');
    expect([...lines, text, after, JSON.stringify(list)].join('\n')).not.toContain(TEST_PAN);
  });
});
