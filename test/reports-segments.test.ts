import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startDialogue, step, type DialogueState } from '../src/domain/dialogue/machine.js';
import { markOf, progressOf } from '../src/domain/dialogue/steps.js';
import type { DialogueCommand, DialogueEvent } from '../src/domain/dialogue/types.js';
import { SegmentRecorder, type FunnelMetrics } from '../src/reports/recorder.js';
import { CallEvents, type CallEvent } from '../src/reports/live.js';
import { MemorySegmentStore, RedisSegmentStore } from '../src/reports/segment-store.js';
import { Reports } from '../src/reports/index.js';
import { silentLogger } from '../src/log.js';
import { assertValidSegment, type SegmentRecord } from '../src/reports/segment.js';
import { isPayIvrError } from '../src/errors.js';
import type { PaymentResult } from '../src/domain/outcome.js';
import { makeInput } from './dialogue-driver.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';

/** Segment records: what the recorder makes of a real dialogue, validation, and both stores. */

const REDIS_PORT = 16402;

function record(id: string, startedAt: string, extra: Partial<SegmentRecord> = {}): SegmentRecord {
  return {
    id,
    node: 'n1',
    profile: 'default',
    mode: 'automated',
    language: 'en-US',
    startedAt,
    endedAt: new Date(Date.parse(startedAt) + 30_000).toISOString(),
    durationMs: 30_000,
    steps: [{ step: 'answer', at: startedAt, invalidEntries: 0, timeouts: 0 }],
    attempts: { charges: 0, declines: 0, invalidEntries: 0, timeouts: 0 },
    declineClasses: [],
    pspMs: [],
    outcome: 'hangup',
    currency: 'EUR',
    handBack: { target: '', status: 'skipped' },
    ...extra,
  };
}

function refusal(rec: unknown): string {
  try {
    assertValidSegment(rec);
  } catch (e) {
    expect(isPayIvrError(e, 'ERR_STORE')).toBe(true);
    return (e as Error).message;
  }
  return 'accepted';
}

describe('segment validation before any write', () => {
  it('accepts a well-formed record', () => {
    expect(refusal(record('c1', '2026-12-01T10:00:00.000Z', { brand: 'visa', last4: '4242', amount: 4990 }))).toBe('accepted');
  });

  it('refuses card data, unknown fields and words outside the vocabularies, naming the path only', () => {
    const base = record('c1', '2026-12-01T10:00:00.000Z');
    const cases: [unknown, string][] = [
      [{ ...base, last4: '4242424242424242' }, '$.last4'],
      [{ ...base, pan: '4242424242424242' }, 'invalid field $'],
      [{ ...base, handBack: { target: 'sip:4242424242424242@x', status: 'accepted' } }, 'card-like data at $.handBack.target'],
      [{ ...base, id: '4242424242424242' }, 'card-like data at $.id'],
      [{ ...base, outcome: 'paid' }, '$.outcome'],
      [{ ...base, steps: [{ step: 'card-4242', at: base.startedAt, invalidEntries: 0, timeouts: 0 }] }, '$.steps.0.step'],
      [{ ...base, brand: 'Visa 4242' }, '$.brand'],
    ];
    for (const [rec, path] of cases) {
      const msg = refusal(rec);
      expect(msg).toContain(path);
      expect(msg).not.toContain('4242424242424242');
    }
  });
});

/** Plays the call layer around the pure machine: keeps the current play and timer ids. */
class Machine {
  state: DialogueState;
  playId = 0;
  timerId = 0;
  constructor(
    readonly rec: SegmentRecorder,
    first: { state: DialogueState; commands: DialogueCommand[] },
  ) {
    this.state = first.state;
    this.#seen(first.commands);
    rec.progress(progressOf(undefined, undefined, first.state));
  }
  #seen(cmds: DialogueCommand[]): void {
    for (const c of cmds) {
      if (c.type === 'play') this.playId = c.playId;
      if (c.type === 'start-timer') this.timerId = c.timerId;
    }
  }
  send(ev: DialogueEvent): void {
    const mark = markOf(this.state);
    const t = step(this.state, ev);
    this.state = t.state;
    this.#seen(t.commands);
    this.rec.progress(progressOf(mark, ev, t.state));
  }
  playDone(): void {
    this.send({ type: 'play-done', playId: this.playId, interrupted: false });
  }
  timeout(): void {
    this.send({ type: 'timeout', timerId: this.timerId });
  }
}

describe('the recorder follows a real dialogue', () => {
  it('steps, wrong keys and silences per step, the abandon step, events and funnel metrics', () => {
    let t = Date.parse('2026-12-01T10:00:00Z');
    const now = (): Date => new Date((t += 1000));
    const events: CallEvent[] = [];
    const bus = new CallEvents();
    bus.subscribe((e) => events.push(e));
    const counted: string[] = [];
    const metrics: FunnelMetrics = {
      stepReached: (s) => counted.push(`reached ${s}`),
      stepInvalidEntries: (s, n) => counted.push(`invalid ${s} ${n}`),
      stepTimeout: (s) => counted.push(`timeout ${s}`),
      stepAbandoned: (s) => counted.push(`abandoned ${s}`),
      segmentEnded: (o) => counted.push(`ended ${o}`),
    };
    const rec = new SegmentRecorder({ id: 'emb-1', node: 'n1', profile: 'default', mode: 'automated', language: 'en-US', now, events: bus, metrics });
    rec.answered();
    const m = new Machine(rec, startDialogue(makeInput()));
    m.playDone(); // "you are about to pay 49.90 EUR: 1 continue..."
    m.send({ type: 'digit', digit: '5' }); // not a menu key
    m.playDone();
    m.timeout(); // silence at the menu
    m.playDone();
    m.send({ type: 'digit', digit: '1' }); // continue: card number prompt
    m.playDone();
    m.timeout(); // silence at the card number
    m.playDone();
    m.send({ type: 'digit', digit: '4' });
    m.send({ type: 'digit', digit: '2' });
    expect(bus.stepOf('emb-1')?.step).toBe('card-number');
    m.send({ type: 'hangup' });
    const seg = rec.finish({ outcome: 'hangup', mode: 'automated', currency: 'EUR', amount: 4990, attempts: { charges: 0, declines: 0, invalidEntries: 3 }, handBack: { target: '', status: 'skipped' } });
    assertValidSegment(seg);
    expect(seg.steps.map((s) => [s.step, s.invalidEntries, s.timeouts])).toEqual([
      ['answer', 0, 0],
      ['amount-offer', 1, 1],
      ['card-number', 0, 1],
    ]);
    // The dialogue counts the two silences as invalid entries too; the segment keeps them apart.
    expect(seg.attempts).toEqual({ charges: 0, declines: 0, invalidEntries: 1, timeouts: 2 });
    expect(seg).toMatchObject({ outcome: 'hangup', amount: 4990, startedAt: '2026-12-01T10:00:01.000Z', answeredAt: '2026-12-01T10:00:02.000Z' });
    expect(counted).toEqual(['reached answer', 'reached amount-offer', 'invalid amount-offer 1', 'timeout amount-offer', 'reached card-number', 'timeout card-number', 'abandoned card-number', 'ended hangup']);
    expect(events.map((e) => (e.type === 'step' ? `step ${e.step}` : e.type))).toEqual(['started', 'step answer', 'step amount-offer', 'step card-number', 'ended']);
    expect(bus.stepOf('emb-1')).toBeUndefined();
    expect(JSON.stringify(seg)).not.toMatch(/"42"|4242/);
  });

  it('records PSP latency and the class of each decline from the charge hook', () => {
    let t = 0;
    const rec = new SegmentRecorder({ id: 'emb-2', node: 'n1', profile: 'default', mode: 'agent', language: 'fr-FR', now: () => new Date(Date.parse('2026-12-01T10:00:00Z') + (t += 250)) });
    rec.charge('start');
    rec.charge('end', { status: 'declined', declineClass: 'incorrect-cvc' });
    rec.charge('start');
    rec.charge('end', { status: 'approved', transactionId: 'tx_1' });
    const result: PaymentResult = { outcome: 'approved', mode: 'agent', currency: 'EUR', amount: 100, amountSource: 'caller', brand: 'visa', last4: '4242', attempts: { charges: 2, declines: 1, invalidEntries: 0 }, handBack: { target: 'sip:+33140000000@genesys.example', status: 'accepted' } };
    const seg = rec.finish(result);
    expect(seg).toMatchObject({ pspMs: [250, 250], declineClasses: ['incorrect-cvc'], brand: 'visa', last4: '4242', amountSource: 'caller', handBack: { status: 'accepted' } });
    assertValidSegment(seg);
  });
});

describe('memory segment store', () => {
  it('returns a range oldest first, keeps the newest within its bound, drops records past the retention', async () => {
    let now = Date.parse('2026-12-10T00:00:00Z');
    const s = new MemorySegmentStore({ maxSegments: 3, retentionSeconds: 5 * 86_400, now: () => now });
    await s.save(record('d1', '2026-12-09T10:00:00.000Z'));
    await s.save(record('d0', '2026-12-09T09:00:00.000Z')); // ended later, started earlier
    await s.save(record('old', '2026-12-01T09:00:00.000Z')); // past the retention
    expect((await s.range(0, now, 100)).map((r) => r.id)).toEqual(['d0', 'd1']);
    await s.save(record('d2', '2026-12-09T11:00:00.000Z'));
    await s.save(record('d3', '2026-12-09T12:00:00.000Z'));
    expect((await s.range(0, now, 100)).map((r) => r.id)).toEqual(['d1', 'd2', 'd3']);
    expect((await s.range(Date.parse('2026-12-09T11:00:00Z'), Date.parse('2026-12-09T12:00:00Z'), 100)).map((r) => r.id)).toEqual(['d2']);
    await expect(s.save({ ...record('bad', '2026-12-09T12:00:00.000Z'), last4: '42424242424242' })).rejects.toThrow(/last4/);
    now += 6 * 86_400_000;
    expect(await s.range(0, now, 100)).toEqual([]);
  });
});

describe('Redis segment store (real redis-server)', () => {
  let redis: RedisServer | undefined;
  beforeAll(async () => {
    redis = await startRedisServer(REDIS_PORT);
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('files records by start time with the retention as key lifetime, skips vanished ones, refuses card data', async () => {
    const url = redis?.url ?? '';
    const s = new RedisSegmentStore({ url, keyPrefix: 'seg-test:', retentionSeconds: 3600 });
    const base = Date.now() - 60_000;
    const at = (s2: number): string => new Date(base + s2 * 1000).toISOString();
    await s.save(record('r2', at(20)));
    await s.save(record('r1', at(10)));
    await s.save(record('r3', at(30)));
    expect((await s.range(base, base + 25_000, 10)).map((r) => r.id)).toEqual(['r1', 'r2']);
    expect((await s.range(base, base + 60_000, 2)).map((r) => r.id)).toEqual(['r1', 'r2']);
    const c = new Redis(url);
    const ttl = await c.ttl('seg-test:segment:r1');
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    await c.del('seg-test:segment:r2'); // expired meanwhile
    expect((await s.range(base, base + 60_000, 10)).map((r) => r.id)).toEqual(['r1', 'r3']);
    expect(await c.zrange('seg-test:segments', '0', '-1')).toEqual(['r1', 'r3']);
    await expect(s.save({ ...record('r4', at(40)), brand: '4242424242424242' })).rejects.toThrow(/brand/);
    expect(await c.exists('seg-test:segment:r4')).toBe(0);
    c.disconnect();
    await s.close();
    await s.close();
  });
});

describe('call events shared between nodes over Redis', () => {
  let redis: RedisServer | undefined;
  beforeAll(async () => {
    redis = await startRedisServer(REDIS_PORT + 1);
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("each node shows the other's calls and steps; forged messages and a node's own echo are ignored", async () => {
    const url = redis?.url ?? '';
    const a = new Reports(new MemorySegmentStore({ maxSegments: 10, retentionSeconds: 3600 }), { node: 'node-a', logger: silentLogger });
    const b = new Reports(new MemorySegmentStore({ maxSegments: 10, retentionSeconds: 3600 }), { node: 'node-b', logger: silentLogger });
    a.relayOver(url, 'rel:');
    b.relayOver(url, 'rel:');
    const seenA: CallEvent[] = [];
    const seenB: CallEvent[] = [];
    a.events.subscribe((e) => seenA.push(e));
    b.events.subscribe((e) => seenB.push(e));
    const c = new Redis(url);
    // Both subscribed: Redis counts two subscribers on the channel.
    await expect.poll(async () => ((await c.pubsub('NUMSUB', 'rel:call-events')) as [string, number])[1]).toBe(2);
    await c.publish('rel:call-events', JSON.stringify({ node: 'x', event: { type: 'step', id: 'emb-x', at: '2026-12-01T10:00:00.000Z', step: 'pan-4242424242424242' } }));
    await c.publish('rel:call-events', 'not json');
    a.events.emit({ type: 'started', id: 'emb-a1', at: '2026-12-01T10:00:00.000Z', profile: 'default', mode: 'automated', node: 'node-a' });
    a.events.emit({ type: 'step', id: 'emb-a1', at: '2026-12-01T10:00:01.000Z', step: 'expiry' });
    await expect.poll(() => b.events.stepOf('emb-a1')?.step).toBe('expiry');
    expect(seenB.map((e) => e.type)).toEqual(['started', 'step']);
    a.events.emit({ type: 'ended', id: 'emb-a1', at: '2026-12-01T10:00:09.000Z', outcome: 'approved', amount: 100, currency: 'EUR', brand: 'visa', durationMs: 9000 });
    await expect.poll(() => seenB.length).toBe(3);
    expect(b.events.stepOf('emb-a1')).toBeUndefined();
    expect(b.events.stepOf('emb-x')).toBeUndefined();
    // node-a got no echo of its own events.
    expect(seenA).toHaveLength(3);
    c.disconnect();
    await a.close();
    await b.close();
  });
});
