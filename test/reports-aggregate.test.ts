import { describe, expect, it } from 'vitest';
import { OUTCOMES } from '../src/domain/outcome.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../src/domain/dialogue/steps.js';
import { funnel, percentile, summarize, timeBuckets } from '../src/reports/aggregate.js';
import { toCsv, toNdjson } from '../src/reports/export.js';
import { assertValidSegment, type SegmentRecord } from '../src/reports/segment.js';
import { parseBound } from '../src/reports/time.js';

/**
 * Report figures from a known set of 21 calls, checked against expectations computed by hand
 * (the arithmetic is in the comments): every outcome, declines of five classes, a hang-up at
 * each step where a caller can hang up.
 */

type Visit = DialogueStep | [DialogueStep, number, number]; // [step, invalid entries, timeouts]

function mk(
  id: string,
  startedAt: string,
  durationMs: number,
  outcome: SegmentRecord['outcome'],
  visits: Visit[],
  extra: Partial<SegmentRecord> = {},
): SegmentRecord {
  const t0 = Date.parse(startedAt);
  const steps = visits.map((v, i) => {
    const [step, inv, to] = Array.isArray(v) ? v : [v, 0, 0];
    return { step, at: new Date(t0 + i * 1000).toISOString(), invalidEntries: inv, timeouts: to };
  });
  const rec: SegmentRecord = {
    id,
    node: 'node-a',
    profile: 'default',
    mode: 'automated',
    language: 'en-US',
    startedAt: new Date(t0).toISOString(),
    answeredAt: new Date(t0 + 200).toISOString(),
    endedAt: new Date(t0 + durationMs).toISOString(),
    durationMs,
    steps,
    attempts: {
      charges: 0,
      declines: 0,
      invalidEntries: steps.reduce((a, s) => a + s.invalidEntries, 0),
      timeouts: steps.reduce((a, s) => a + s.timeouts, 0),
    },
    declineClasses: [],
    pspMs: [],
    outcome,
    currency: 'EUR',
    handBack: { target: 'sip:+18005550100@127.0.0.1', status: visits.includes('handback') ? 'accepted' : 'skipped' },
    ...extra,
  };
  assertValidSegment(rec);
  return rec;
}

const CARD: DialogueStep[] = ['card-number', 'card-number-confirm', 'expiry', 'expiry-confirm', 'security-code'];
const FULL: DialogueStep[] = ['answer', 'amount-offer', ...CARD, 'charging'];

/** Hang-up paths: the steps up to (and including) the one the caller left at. */
const HANGUP_PATHS: DialogueStep[][] = [
  ['answer'],
  ['answer', 'amount-offer'],
  ['answer', 'amount'],
  ['answer', 'amount', 'amount-confirm'],
  ['answer', 'amount-offer', 'card-number'],
  ['answer', 'amount-offer', 'card-number', 'card-number-confirm'],
  ['answer', 'amount-offer', 'card-number', 'card-number-confirm', 'expiry'],
  ['answer', 'amount-offer', 'card-number', 'card-number-confirm', 'expiry', 'expiry-confirm'],
  ['answer', 'amount-offer', ...CARD],
  ['answer', 'amount-offer', ...CARD, 'security-code-confirm'],
  [...FULL, 'other-card'],
];

const SEGMENTS: SegmentRecord[] = [
  mk('a1', '2026-12-01T08:10:00Z', 60_000, 'approved', [...FULL, 'result', 'handback'], { amount: 1500, brand: 'visa', last4: '4242', attempts: { charges: 1, declines: 0, invalidEntries: 0, timeouts: 0 }, pspMs: [400] }),
  mk('a2', '2026-12-01T08:40:00Z', 80_000, 'approved', ['answer', ['amount-offer', 0, 1], ['card-number', 1, 0], 'card-number-confirm', 'expiry', 'expiry-confirm', 'security-code', 'charging', 'security-code', 'charging', 'result', 'handback'], {
    profile: 'sales', currency: 'USD', amount: 2000, brand: 'amex', last4: '0005', attempts: { charges: 2, declines: 1, invalidEntries: 1, timeouts: 1 }, declineClasses: ['incorrect-cvc'], pspMs: [600, 800],
  }),
  mk('d1', '2026-12-01T09:05:00Z', 70_000, 'declined', [...FULL, 'other-card', 'result', 'handback'], { amount: 500, brand: 'visa', attempts: { charges: 1, declines: 1, invalidEntries: 0, timeouts: 0 }, declineClasses: ['insufficient-funds'], pspMs: [300] }),
  mk('md', '2026-12-01T09:20:00Z', 120_000, 'max-declines', [...FULL, 'other-card', ...CARD, 'charging', 'result', 'handback'], {
    amount: 700, brand: 'mastercard', attempts: { charges: 2, declines: 2, invalidEntries: 0, timeouts: 0 }, declineClasses: ['do-not-honor', 'insufficient-funds'], pspMs: [200, 1000],
    handBack: { target: 'sip:+18005550199@127.0.0.1', status: 'failed' },
  }),
  mk('ma', '2026-12-01T10:00:00Z', 50_000, 'max-attempts', ['answer', 'amount-offer', ['card-number', 2, 1], 'result', 'handback'], { amount: 900 }),
  mk('ca', '2026-12-01T10:30:00Z', 20_000, 'cancelled', ['answer', 'amount-offer', 'result', 'handback'], { amount: 1200 }),
  mk('ni', '2026-12-01T11:00:00Z', 3_000, 'not-identified', ['answer', 'handback']),
  mk('ar', '2026-12-01T11:15:00Z', 15_000, 'amount-refused', ['answer', 'amount-offer', 'result', 'handback'], { amount: 800 }),
  mk('pe', '2026-12-01T11:30:00Z', 45_000, 'psp-error', [...FULL, 'result', 'handback'], { amount: 1000, brand: 'visa', attempts: { charges: 1, declines: 0, invalidEntries: 0, timeouts: 0 }, pspMs: [5000] }),
  mk('er', '2026-12-01T12:00:00Z', 1_000, 'error', ['answer', 'handback'], { handBack: { target: 'sip:+18005550100@127.0.0.1', status: 'failed' } }),
  // Hang-ups at 13:00Z, 13:05Z ... 13:50Z lasting 10 s, 20 s ... 110 s.
  ...HANGUP_PATHS.map((path, i) => {
    const last = path[path.length - 1] as DialogueStep;
    const start = new Date(Date.parse('2026-12-01T13:00:00Z') + i * 300_000).toISOString();
    const priced = !path.includes('amount');
    const extra: Partial<SegmentRecord> = priced ? { amount: 1000 } : {};
    if (last === 'other-card') Object.assign(extra, { brand: 'visa', attempts: { charges: 1, declines: 1, invalidEntries: 0, timeouts: 0 }, declineClasses: ['fraud'], pspMs: [700] });
    return mk(`h-${last}`, start, 10_000 * (i + 1), 'hangup', path, extra);
  }),
];

describe('report figures from a known set of calls', () => {
  const all = summarize(SEGMENTS, { tz: 'UTC' });

  it('covers every outcome of the hand-computed set and each hang-up step', () => {
    expect(SEGMENTS).toHaveLength(21);
    const covered = new Set(SEGMENTS.map((s) => s.outcome));
    for (const o of ['approved', 'declined', 'max-declines', 'max-attempts', 'cancelled', 'hangup', 'not-identified', 'amount-refused', 'psp-error', 'error']) expect(covered.has(o as SegmentRecord['outcome'])).toBe(true);
  });

  it('counts, outcomes, approved amounts per currency, approval and conversion rates', () => {
    const t = all.total;
    expect(t.count).toBe(21);
    // Every outcome of the vocabulary is listed, zeros included.
    expect(Object.keys(t.outcomes).sort()).toEqual([...OUTCOMES].sort());
    expect(t.outcomes).toMatchObject({ approved: 2, declined: 1, 'max-declines': 1, 'max-attempts': 1, cancelled: 1, hangup: 11, 'not-identified': 1, 'amount-refused': 1, 'psp-error': 1, error: 1 });
    expect(t.amount).toEqual({ EUR: 1500, USD: 2000 });
    expect(t.approved).toBe(2);
    // Charged: a1, a2, d1, md, pe and the hang-up after a fraud decline.
    expect(t.charged).toBe(6);
    expect(t.approvalRate).toBe(0.3333); // 2 / 6
    expect(t.conversionRate).toBe(0.0952); // 2 / 21
    expect(t.declines).toEqual({ 'insufficient-funds': 2, 'do-not-honor': 1, 'expired-card': 0, 'incorrect-cvc': 1, 'incorrect-number': 0, fraud: 1, 'processing-error': 0 });
  });

  it('segment duration mean and p95, PSP latency percentiles', () => {
    const t = all.total;
    // (464 000 for the first ten + 10 000 x (1+...+11) = 660 000) / 21 = 53 523.8
    expect(t.avgDurationMs).toBe(53_524);
    // Nearest rank: ceil(0.95 x 21) = 20th of 21 = the second longest (110 s).
    expect(t.p95DurationMs).toBe(110_000);
    // 200 300 400 600 700 800 1000 5000: ranks 4, 8, 8.
    expect(t.pspMs).toEqual({ count: 8, p50: 600, p95: 5000, p99: 5000 });
    expect(percentile([], 95)).toBeNull();
  });

  it('groups by hour in a time zone, listing empty hours of the range', () => {
    const tz = 'Europe/Paris'; // UTC+1 in December
    const fromMs = parseBound('2026-12-01', tz) as number;
    const toMs = parseBound('2026-12-02', tz) as number;
    expect(new Date(fromMs).toISOString()).toBe('2026-11-30T23:00:00.000Z');
    const s = summarize(SEGMENTS, { groupBy: 'hour', tz, fromMs, toMs });
    expect(s.groups).toHaveLength(24);
    const byKey = Object.fromEntries(s.groups.map((g) => [g.key, g]));
    expect(byKey['2026-12-01T09']).toMatchObject({ count: 2, amount: { EUR: 1500, USD: 2000 }, approved: 2 });
    expect(byKey['2026-12-01T10']?.count).toBe(2);
    expect(byKey['2026-12-01T11']?.count).toBe(2);
    expect(byKey['2026-12-01T12']?.count).toBe(3);
    expect(byKey['2026-12-01T13']?.count).toBe(1);
    expect(byKey['2026-12-01T14']).toMatchObject({ count: 11, outcomes: { hangup: 11 }, amount: {} });
    expect(byKey['2026-12-01T00']).toMatchObject({ count: 0, avgDurationMs: null, approvalRate: null });
    expect(s.groups.reduce((a, g) => a + g.count, 0)).toBe(21);
  });

  it('groups by day where the day changes mid-set (Auckland, UTC+13)', () => {
    const s = summarize(SEGMENTS, { groupBy: 'day', tz: 'Pacific/Auckland' });
    // Before 11:00Z it is still Dec 1 in Auckland: a1 a2 d1 md ma ca.
    expect(s.groups.map((g) => [g.key, g.count])).toEqual([['2026-12-01', 6], ['2026-12-02', 15]]);
  });

  it('groups by decline class, brand, profile and outcome', () => {
    const cls = Object.fromEntries(summarize(SEGMENTS, { groupBy: 'declineClass', tz: 'UTC' }).groups.map((g) => [g.key, g.count]));
    expect(cls).toEqual({ none: 17, 'insufficient-funds': 2, 'do-not-honor': 1, 'incorrect-cvc': 1, fraud: 1 });
    const brand = Object.fromEntries(summarize(SEGMENTS, { groupBy: 'brand', tz: 'UTC' }).groups.map((g) => [g.key, g.count]));
    expect(brand).toEqual({ none: 15, visa: 4, amex: 1, mastercard: 1 });
    const profile = summarize(SEGMENTS, { groupBy: 'profile', tz: 'UTC' }).groups;
    expect(profile.map((g) => [g.key, g.count, g.amount])).toEqual([['default', 20, { EUR: 1500 }], ['sales', 1, { USD: 2000 }]]);
    const outcome = summarize(SEGMENTS, { groupBy: 'outcome', tz: 'UTC' }).groups;
    expect(outcome[0]).toMatchObject({ key: 'hangup', count: 11 });
    expect(outcome).toHaveLength(10);
  });

  it('the funnel: reached, completed, ended, abandoned, invalid entries and timeouts per step', () => {
    const rows = Object.fromEntries(funnel(SEGMENTS).map((r) => [r.step, [r.reached, r.completed, r.ended, r.abandoned, r.invalidEntries, r.timeouts]]));
    expect(Object.keys(rows)).toEqual([...DIALOGUE_STEPS]);
    expect(rows).toEqual({
      answer: [21, 20, 1, 1, 0, 0],
      'amount-offer': [16, 15, 1, 1, 0, 1],
      amount: [2, 1, 1, 1, 0, 0],
      'amount-confirm': [1, 0, 1, 1, 0, 0],
      'card-number': [13, 12, 1, 1, 3, 1],
      'card-number-confirm': [11, 10, 1, 1, 0, 0],
      expiry: [10, 9, 1, 1, 0, 0],
      'expiry-confirm': [9, 8, 1, 1, 0, 0],
      'security-code': [8, 7, 1, 1, 0, 0],
      'security-code-confirm': [1, 0, 1, 1, 0, 0],
      charging: [6, 6, 0, 0, 0, 0],
      'other-card': [3, 2, 1, 1, 0, 0],
      result: [8, 8, 0, 0, 0, 0],
      // Always the last step: completed = REFER accepted (all but md and er).
      handback: [10, 8, 10, 0, 0, 0],
    });
    const abandoned = funnel(SEGMENTS).reduce((a, r) => a + r.abandoned, 0);
    expect(abandoned).toBe(11);
  });

  it('hour buckets across a DST change: 23 local hours on the spring-forward day', () => {
    const tz = 'Europe/Paris';
    const keys = timeBuckets('hour', parseBound('2026-03-29', tz) as number, parseBound('2026-03-30', tz) as number, tz) ?? [];
    expect(keys).toHaveLength(23);
    expect(keys).not.toContain('2026-03-29T02');
  });

  it('exports CSV with one row per call, and NDJSON that reads back to the same records', () => {
    const csv = toCsv(SEGMENTS);
    const lines = csv.trimEnd().split('\r\n');
    expect(lines).toHaveLength(22);
    expect(lines[0]).toBe('id,node,profile,mode,language,startedAt,answeredAt,endedAt,durationMs,outcome,amount,amountSource,currency,brand,last4,charges,declines,invalidEntries,timeouts,declineClasses,pspMs,handBackTarget,handBackStatus,lastStep,steps');
    expect(lines.find((l) => l.startsWith('md,'))).toContain(',max-declines,700,,EUR,mastercard,,2,2,0,0,do-not-honor;insufficient-funds,200;1000,sip:+18005550199@127.0.0.1,failed,handback,answer@0;amount-offer@1000;');
    const nd = toNdjson(SEGMENTS).trimEnd().split('\n').map((l) => JSON.parse(l) as SegmentRecord);
    expect(nd).toEqual(SEGMENTS);
  });

  it('a text cell a spreadsheet would run as a formula is quoted', () => {
    const s = { ...(SEGMENTS[0] as SegmentRecord), handBack: { target: '=HYPERLINK("x")', status: 'accepted' as const } };
    expect(toCsv([s])).toContain(`,"'=HYPERLINK(""x"")",accepted,`);
  });
});
