import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Spool } from '../src/journal/spool.js';
import { createLogger, silentLogger, type Logger } from '../src/log.js';
import { WriteBackQueue } from '../src/genesys/platform/write-back.js';
import { WriteBackResultStore } from '../src/genesys/platform/write-back-store.js';
import { retryDelayMs, QUEUED_PREFIX, ACKED_PREFIX } from '../src/genesys/platform/write-back-records.js';
import { MemoryStore } from '../src/store/memory.js';
import type { PaymentResult } from '../src/domain/outcome.js';
import { TestClock, WriterDouble, attributesOf, until } from './support/write-back-doubles.js';
import { sampleResult } from './support/result-fixtures.js';
import { cardDigitHits, filesUnder } from './support/run-texts.js';

/**
 * The participant-data write-back queue on a real spool file: outage and recovery, backoff,
 * dead letters, ordering of a call's versions, idempotency across restarts (kill -9 included),
 * and no card data anywhere it writes.
 */

const TEST_PAN = '4111111111111111';
const DELIVERY = { retryBaseMs: 1_000, maxRetryMs: 8_000, maxAttempts: 5, maxAgeMs: 3_600_000 };

const dirs: string[] = [];
const spools: Spool[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'payivr-wb-'));
  dirs.push(d);
  return d;
}
function openSpool(path: string): Spool {
  const s = Spool.open({ path, maxBytes: 8 << 20 });
  spools.push(s);
  return s;
}
afterEach(async () => {
  for (const s of spools.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function result(callRef: string, conversationId: string, extra: Partial<PaymentResult> = {}): PaymentResult & { id: string } {
  return sampleResult(callRef, { conversationId, ...extra });
}

function makeQueue(spool: Spool, writer: WriterDouble, clock: TestClock, over: Partial<typeof DELIVERY> = {}, logger: Logger = silentLogger): WriteBackQueue {
  return new WriteBackQueue({ spool, writer, attributesOf, delivery: { ...DELIVERY, ...over }, logger, now: clock.read, setTimer: clock.setTimer });
}

interface QueueRig {
  path: string;
  spool: Spool;
  clock: TestClock;
  writer: WriterDouble;
  q: WriteBackQueue;
}

/** A queue on a spool file (a new one unless `path`), with its own test clock and writer double; started unless `start: false`. */
function queueRig(opts: { path?: string; answer?: WriterDouble['answer']; over?: Partial<typeof DELIVERY>; start?: boolean } = {}): QueueRig {
  const path = opts.path ?? join(tmp(), 'spool.jsonl');
  const spool = openSpool(path);
  const clock = new TestClock();
  const writer = new WriterDouble();
  if (opts.answer) writer.answer = opts.answer;
  const q = makeQueue(spool, writer, clock, opts.over);
  if (opts.start !== false) q.start();
  return { path, spool, clock, writer, q };
}

/** callRef of each acknowledged write, in order. */
function writtenRefs(w: WriterDouble): string[] {
  return w.written().map((c) => c.attributes['payivr.callRef'] ?? '?');
}

/** A retry timer is armed (the other timer is the maxAgeMs deadline, an hour away). */
function retryPlanned(clock: TestClock): () => boolean {
  return () => clock.nextAt !== undefined && clock.nextAt - clock.now < 3_000_000;
}

describe('retry delay', () => {
  it('doubles from retryBaseMs up to maxRetryMs; a longer Retry-After wins', () => {
    const d = { retryBaseMs: 1_000, maxRetryMs: 8_000 };
    expect([1, 2, 3, 4, 5, 9].map((n) => retryDelayMs(n, d))).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(retryDelayMs(1, d, 30_000)).toBe(30_000);
    expect(retryDelayMs(3, d, 500)).toBe(4_000);
  });
});

describe('write-back queue', () => {
  it('an outage keeps every write queued; once Genesys answers, all 20 are written, each once, in order per conversation', async () => {
    const { spool, clock, writer, q } = queueRig({ answer: () => ({ kind: 'retry', why: '503 Service Unavailable' }), over: { maxAttempts: 1000 } });
    // 20 payments over 4 conversations, queued while every write fails.
    const order: string[] = [];
    for (let i = 0; i < 20; i++) {
      const callRef = `call-${String(i).padStart(2, '0')}`;
      order.push(callRef);
      expect(await q.enqueueResult(result(callRef, `conv-${i % 4}`))).toBe('queued');
      clock.advance(700);
      await q.settled();
    }
    // Two minutes of outage: probes fail, nothing is lost or dead-lettered.
    for (let t = 0; t < 120; t++) {
      clock.advance(1_000);
      await q.settled();
    }
    expect(writer.calls.length).toBeGreaterThan(3);
    expect(writer.written()).toEqual([]);
    expect(q.status()).toMatchObject({ queued: 20, deadLetters: 0, backingOff: true });
    expect(q.status().oldestAgeMs).toBeGreaterThan(120_000);
    // The outage probes one write at a time, never the whole queue at once.
    const triedDuringOutage = writer.calls.length;
    expect(triedDuringOutage).toBeLessThan(60);

    writer.answer = () => ({ kind: 'written' });
    for (let t = 0; t < 20 && writer.written().length < 20; t++) {
      clock.advance(8_000);
      await q.settled();
    }
    expect(q.status().queued).toBe(0);
    const refs = writtenRefs(writer);
    expect(new Set(refs).size).toBe(20);
    // Per conversation strictly in queue order.
    for (let c = 0; c < 4; c++) {
      expect(refs.filter((r) => Number(r.slice(5)) % 4 === c)).toEqual(order.filter((r) => Number(r.slice(5)) % 4 === c));
    }
    expect(q.status()).toMatchObject({ queued: 0, deadLetters: 0, backingOff: false });
    expect(spool.entries(QUEUED_PREFIX)).toEqual([]);
    await q.close();
  });

  it('stays backing-off while the probe of an outage is in flight: a Genesys that hangs is not shown ok', async () => {
    const spool = openSpool(join(tmp(), 'spool.jsonl'));
    const clock = new TestClock();
    const writer = new WriterDouble();
    writer.answer = () => ({ kind: 'retry', why: 'ECONNRESET' });
    const q = makeQueue(spool, writer, clock);
    q.start();
    await q.enqueueResult(result('c1', 'conv-1'));
    await until(() => writer.calls[0]?.verdict !== undefined, 'first try');
    await q.settled();
    expect(q.status().backingOff).toBe(true);
    // The pause ends; the probe goes out and gets no answer yet.
    writer.hold = true;
    clock.advance(DELIVERY.maxRetryMs);
    await until(() => writer.heldCount === 1, 'probe sent');
    expect(q.status()).toMatchObject({ queued: 1, backingOff: true });
    writer.answer = () => ({ kind: 'written' });
    writer.hold = false;
    writer.release();
    await until(() => writer.written().length === 1, 'probe written');
    await q.settled();
    expect(q.status()).toMatchObject({ queued: 0, backingOff: false });
    await q.close();
  });

  it('waits as long as Retry-After says when it is longer than the backoff, and backs off exponentially otherwise', async () => {
    const { clock, writer, q } = queueRig({ answer: () => ({ kind: 'retry', why: '429 Too Many Requests', afterMs: 7_000 }) });
    await q.enqueueResult(result('c1', 'conv-1'));
    await until(() => writer.calls[0]?.verdict !== undefined, 'first try');
    await until(retryPlanned(clock), 'retry planned');
    expect(clock.nextAt! - clock.now).toBe(7_000);
    clock.advance(6_999);
    expect(writer.calls.length).toBe(1);
    writer.answer = () => ({ kind: 'retry', why: '502 Bad Gateway' });
    clock.advance(1);
    await until(() => writer.calls.length === 2 && writer.calls[1]?.verdict !== undefined, 'second try');
    await until(retryPlanned(clock), 'retry planned');
    // Second failure in a row without Retry-After: retryBaseMs * 2.
    expect(clock.nextAt! - clock.now).toBe(2_000);
    clock.advance(1_999);
    expect(writer.calls.length).toBe(2);
    writer.answer = () => ({ kind: 'written' });
    clock.advance(1);
    await until(() => q.status().queued === 0, 'delivered');
    expect(writer.written().length).toBe(1);
    await q.close();
  });

  it('a write still failing after maxAttempts tries goes to the dead-letter list; a rejected one at once', async () => {
    const { spool, clock, writer, q } = queueRig({ answer: (c) => (c.conversationId === 'conv-gone' ? { kind: 'rejected', why: 'conversation not found', status: 404 } : { kind: 'retry', why: 'timeout' }), over: { maxAttempts: 3 } });
    await q.enqueueResult(result('c-gone', 'conv-gone'));
    await until(() => q.status().deadLetters === 1, 'rejected write dead-lettered');
    expect(writer.calls.length).toBe(1);
    expect(q.deadLetters()[0]).toMatchObject({ conversationId: 'conv-gone', callRef: 'c-gone', reason: 'rejected', lastError: '404 conversation not found', tries: 1, outcome: 'approved' });

    await q.enqueueResult(result('c-slow', 'conv-slow'));
    for (let i = 0; i < 10 && q.status().deadLetters < 2; i++) {
      await q.settled();
      clock.advance(8_000);
    }
    await q.settled();
    expect(q.status().deadLetters).toBe(2);
    expect(writer.calls.filter((c) => c.conversationId === 'conv-slow').length).toBe(3);
    const dl = q.deadLetters().find((d) => d.callRef === 'c-slow');
    expect(dl).toMatchObject({ reason: 'max-attempts', tries: 3, lastError: 'timeout', attributes: expect.objectContaining({ 'payivr.last4': '4242' }) });
    expect(q.status().queued).toBe(0);

    // Dead letters are durable; an operator puts one back and it is written once Genesys takes it.
    await q.close();
    const q2 = makeQueue(spool, writer, clock, { maxAttempts: 3 });
    expect(q2.deadLetters().map((d) => d.callRef).sort()).toEqual(['c-gone', 'c-slow']);
    q2.start();
    writer.answer = () => ({ kind: 'written' });
    expect(await q2.retryDeadLetter('c-slow')).toBe('queued');
    await until(() => q2.status().queued === 0, 'retried write delivered');
    expect(writer.written().map((c) => c.conversationId)).toEqual(['conv-slow']);
    expect(await q2.dismissDeadLetter('c-gone')).toBe(true);
    expect(await q2.dismissDeadLetter('c-gone')).toBe(false);
    expect(q2.status().deadLetters).toBe(0);
    await q2.close();
  });

  it('a write older than maxAgeMs goes to the dead-letter list', async () => {
    const { clock, q } = queueRig({ answer: () => ({ kind: 'retry', why: 'ECONNREFUSED' }), over: { maxAttempts: 1000, maxAgeMs: 60_000 } });
    await q.enqueueResult(result('c-old', 'conv-old'));
    for (let i = 0; i < 12; i++) {
      await q.settled();
      clock.advance(8_000);
    }
    await q.settled();
    expect(q.status().deadLetters).toBe(1);
    expect(q.deadLetters()[0]).toMatchObject({ reason: 'max-age', lastError: 'ECONNREFUSED' });
    await q.close();
  });

  it('a newer version of a call replaces an older one still queued, and is written after one in flight, never before', async () => {
    const { writer, q } = queueRig();
    // v1 (charged) in flight when v2 (ended) and v3 (reconciled) arrive.
    writer.hold = true;
    await q.enqueueResult(result('c1', 'conv-1', { stage: 'charged', outcome: 'unconfirmed' }));
    await until(() => writer.heldCount === 1, 'v1 in flight');
    await q.enqueueResult(result('c1', 'conv-1', { stage: 'ended', outcome: 'unconfirmed' }));
    await q.enqueueResult(result('c1', 'conv-1', { stage: 'ended', outcome: 'approved', origin: 'reconciled' }));
    expect(q.queued().map((w) => w.key)).toEqual(['c1#3']);
    writer.hold = false;
    writer.release();
    await until(() => q.status().queued === 0, 'delivered');
    expect(writer.written().map((c) => [c.attributes['payivr.stage'], c.attributes['payivr.outcome']])).toEqual([
      ['charged', 'unconfirmed'],
      ['ended', 'approved'],
    ]);
    // Two calls of one conversation: in the order they changed.
    await q.enqueueResult(result('a', 'conv-2', { outcome: 'declined' }));
    await q.enqueueResult(result('b', 'conv-2', { outcome: 'approved' }));
    await until(() => q.status().queued === 0, 'delivered');
    expect(writtenRefs(writer).slice(2)).toEqual(['a', 'b']);
    await q.close();
  });

  it('is idempotent: an unchanged re-save is not sent again; an acknowledged or older entry left by a crash is not sent', async () => {
    const { path, spool, clock, writer, q } = queueRig();
    const r = result('c1', 'conv-1');
    await q.enqueueResult(r);
    await until(() => q.status().queued === 0, 'delivered');
    expect(await q.enqueueResult(r)).toBe('unchanged');
    await q.close();
    // A crash between the acknowledgement and the removal leaves both records; a stale older
    // version of another call sits behind its newer acknowledged one.
    const ack = spool.get(`${ACKED_PREFIX}c1`) as { version: number };
    expect(ack.version).toBe(1);
    await spool.set(`${QUEUED_PREFIX}c1`, { key: 'c1#1', conversationId: 'conv-1', callRef: 'c1', version: 1, updatedAt: new Date(clock.now).toISOString(), outcome: 'approved', attributes: { 'payivr.callRef': 'c1' }, seq: 1, tries: 0 });
    await spool.set(`${ACKED_PREFIX}c2`, { version: 4, digest: 'x', at: new Date(clock.now).toISOString() });
    await spool.set(`${QUEUED_PREFIX}c2`, { key: 'c2#3', conversationId: 'conv-2', callRef: 'c2', version: 3, updatedAt: new Date(clock.now).toISOString(), outcome: 'declined', attributes: { 'payivr.outcome': 'declined' }, seq: 2, tries: 0 });
    await spool.close();
    const spool2 = openSpool(path);
    const q2 = makeQueue(spool2, writer, clock);
    expect(q2.status().queued).toBe(0);
    q2.start();
    await spool2.flushed();
    expect(writer.calls.length).toBe(1);
    expect(spool2.entries(QUEUED_PREFIX)).toEqual([]);
    // The same result saved again after the restart: still not sent twice.
    expect(await q2.enqueueResult(r)).toBe('unchanged');
    await q2.close();
  });

  it('a new queue on the same spool delivers, in order, what the first left, including the write it was sending', async () => {
    const { path, spool, clock, writer, q } = queueRig();
    writer.hold = true;
    for (let i = 0; i < 5; i++) await q.enqueueResult(result(`c${i}`, 'conv-1'));
    await until(() => writer.heldCount === 1, 'first write in flight');
    // Dropped mid-write: never answered, never closed; the lock of the "dead" owner is removed.
    await spool.flushed();
    spools.splice(spools.indexOf(spool), 1);
    rmSync(`${path}.lock`);
    const spool2 = openSpool(path);
    const writer2 = new WriterDouble();
    const q2 = makeQueue(spool2, writer2, clock);
    expect(q2.status().queued).toBe(5);
    q2.start();
    await until(() => q2.status().queued === 0, 'delivered after restart');
    expect(writtenRefs(writer2)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    await q2.close();
  });

  it('kill -9 of the process that queued the writes (one in flight): the next start delivers every one', async () => {
    const dir = tmp();
    const path = join(dir, 'spool.jsonl');
    const script = `
      import { Spool } from ${JSON.stringify(resolve('src/journal/spool.ts'))};
      import { WriteBackQueue } from ${JSON.stringify(resolve('src/genesys/platform/write-back.ts'))};
      import { MemoryStore } from ${JSON.stringify(resolve('src/store/memory.ts'))};
      import { WriteBackResultStore } from ${JSON.stringify(resolve('src/genesys/platform/write-back-store.ts'))};
      import { attributesOf, WriterDouble } from ${JSON.stringify(resolve('test/support/write-back-doubles.ts'))};
      import { sampleResult } from ${JSON.stringify(resolve('test/support/result-fixtures.ts'))};
      import { silentLogger } from ${JSON.stringify(resolve('src/log.ts'))};
      const spool = Spool.open({ path: ${JSON.stringify(path)}, maxBytes: 1 << 22 });
      const writer = new WriterDouble();
      writer.hold = true;
      const q = new WriteBackQueue({ spool, writer, attributesOf, delivery: ${JSON.stringify(DELIVERY)}, logger: silentLogger });
      q.start();
      const store = new WriteBackResultStore(new MemoryStore(), q);
      for (let i = 0; i < 10; i++) await store.saveResult(sampleResult('k' + i, { conversationId: 'conv-' + (i % 3) }));
      while (writer.heldCount < 3) await new Promise((r) => setTimeout(r, 5));
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    const { writer, q } = queueRig({ path, start: false });
    expect(q.status().queued).toBe(10);
    q.start();
    await until(() => q.status().queued === 0, 'delivered after kill -9');
    const refs = writtenRefs(writer);
    expect([...refs].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`));
    for (let c = 0; c < 3; c++) {
      expect(refs.filter((x) => Number(x.slice(1)) % 3 === c)).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`).filter((x) => Number(x.slice(1)) % 3 === c));
    }
    await q.close();
  }, 30_000);

  it('keeps the spool for the payment journal: no new write once the file is over half full (the result is still saved)', async () => {
    const spool = Spool.open({ path: join(tmp(), 'spool.jsonl'), maxBytes: 8_192 });
    spools.push(spool);
    const clock = new TestClock();
    const q = makeQueue(spool, new WriterDouble(), clock);
    const store = new WriteBackResultStore(new MemoryStore(), q);
    await spool.set('j:big', { pad: 'x'.repeat(4_500) });
    await store.saveResult(result('c1', 'conv-1'));
    expect(q.status().queued).toBe(0);
    expect((await store.getById('c1'))?.outcome).toBe('approved');
    await spool.delete('j:big');
    await spool.compact();
    expect(await q.enqueueResult(result('c1', 'conv-1'))).toBe('queued');
    await q.close();
  });

  it('the store resolves a save only once its write is queued on disk; results without a conversation id are not queued', async () => {
    const { path, q } = queueRig({ start: false });
    const store = new WriteBackResultStore(new MemoryStore(), q);
    await store.saveResult(result('c1', 'conv-1'));
    await store.saveResult(sampleResult('c2', { conversationId: undefined }));
    // Read back from a fresh open of the file: what is there survives a crash.
    const copy = join(tmp(), 'copy.jsonl');
    spawnSync('cp', [path, copy]);
    const s2 = openSpool(copy);
    expect(s2.entries(QUEUED_PREFIX).map(([k]) => k)).toEqual([`${QUEUED_PREFIX}c1`]);
    expect((await store.getById('c1'))?.outcome).toBe('approved');
    await q.close();
  });

  it('refuses card data before it is queued, keeps the 16-digit PSP reference, and neither the spool nor the log holds a card number', async () => {
    const dir = tmp();
    const logPath = join(dir, 'pay-ivr.log');
    const logger = createLogger({ level: 'debug', destination: logPath });
    const spool = openSpool(join(dir, 'data', 'spool.jsonl'));
    const clock = new TestClock();
    const writer = new WriterDouble();
    writer.answer = (c) => (c.conversationId === 'conv-dead' ? { kind: 'rejected', why: 'not found', status: 404 } : { kind: 'written' });
    const q = new WriteBackQueue({
      spool,
      writer,
      // A mapping bug that would copy a card number into an attribute.
      attributesOf: (r) => (r.reference === 'LEAK' ? { ...attributesOf(r), 'payivr.note': `card ${TEST_PAN}` } : attributesOf(r)),
      delivery: DELIVERY,
      logger,
      now: clock.read,
      setTimer: clock.setTimer,
    });
    q.start();
    expect(await q.enqueueResult(result('c-leak', 'conv-1', { reference: 'LEAK' }))).toBe('refused');
    expect(await q.enqueueResult(result('c-pan', 'conv-1', { accountId: TEST_PAN }))).toBe('refused');
    expect(await q.enqueueResult(result('c-ok', 'conv-1'))).toBe('queued');
    expect(await q.enqueueResult(result('c-dead', 'conv-dead'))).toBe('queued');
    await until(() => q.status().queued === 0 && q.status().deadLetters === 1, 'written and dead-lettered');
    // The PSP reference went to Genesys whole.
    expect(writer.written()[0]?.attributes['payivr.pspReference']).toBe('8515131751004933');
    expect(writer.calls.every((c) => !JSON.stringify(c).includes(TEST_PAN))).toBe(true);
    await q.close();
    await spool.close();
    await new Promise<void>((r) => logger.flush(() => r()));
    const texts = filesUnder([dir]);
    expect(texts.some((t) => t.text.includes('genesys write-back delivered'))).toBe(true);
    expect(texts.some((t) => t.text.includes('genesys write-back dead-lettered'))).toBe(true);
    expect(cardDigitHits(texts, [TEST_PAN])).toEqual([]);
  });
});
