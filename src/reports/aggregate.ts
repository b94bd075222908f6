import { DECLINE_CLASSES, OUTCOMES } from '../domain/outcome.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../domain/dialogue/steps.js';
import { lastStep, type SegmentRecord } from './segment.js';
import { dayKey, hourKey } from './time.js';

/**
 * Report figures from segment records. Pure: no I/O, no clock; the same records give the same
 * figures. docs/reports.md says how each figure is computed.
 */

export const GROUP_BY = ['hour', 'day', 'profile', 'outcome', 'brand', 'declineClass'] as const;
export type GroupBy = (typeof GROUP_BY)[number];

interface Percentiles {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface SummaryFigures {
  /** Segments (calls). */
  count: number;
  /** Segments per outcome (every outcome of the vocabulary, zeros included). */
  outcomes: Record<string, number>;
  /** Amount approved, minor units per currency. */
  amount: Record<string, number>;
  /** Segments with outcome `approved`. */
  approved: number;
  /** Segments with at least one charge sent to the PSP. */
  charged: number;
  /** approved / charged (null when nothing was charged). */
  approvalRate: number | null;
  /** approved / count (null when no segment). */
  conversionRate: number | null;
  /** Declines per class (each decline counts, several per call possible). */
  declines: Record<string, number>;
  /** Mean segment duration, ms (null when no segment). */
  avgDurationMs: number | null;
  /** 95th percentile (nearest rank) of segment duration, ms. */
  p95DurationMs: number | null;
  /** PSP request latency over every charge, ms. */
  pspMs: Percentiles;
}

interface SummaryGroup extends SummaryFigures {
  key: string;
}

interface Summary {
  groupBy: GroupBy | undefined;
  tz: string;
  total: SummaryFigures;
  groups: SummaryGroup[];
}

/** Nearest-rank percentile of ascending `sorted` (null when empty). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

function ratio(a: number, b: number): number | null {
  return b === 0 ? null : Math.round((a / b) * 10_000) / 10_000;
}

function figures(segs: readonly SegmentRecord[]): SummaryFigures {
  const outcomes: Record<string, number> = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  const declines: Record<string, number> = Object.fromEntries(DECLINE_CLASSES.map((c) => [c, 0]));
  const amount: Record<string, number> = {};
  const durations: number[] = [];
  const psp: number[] = [];
  let approved = 0;
  let charged = 0;
  for (const s of segs) {
    outcomes[s.outcome] = (outcomes[s.outcome] ?? 0) + 1;
    if (s.outcome === 'approved') {
      approved++;
      if (s.amount !== undefined) amount[s.currency] = (amount[s.currency] ?? 0) + s.amount;
    }
    if (s.attempts.charges > 0) charged++;
    for (const c of s.declineClasses) declines[c] = (declines[c] ?? 0) + 1;
    durations.push(s.durationMs);
    psp.push(...s.pspMs);
  }
  durations.sort((a, b) => a - b);
  psp.sort((a, b) => a - b);
  const sum = durations.reduce((a, b) => a + b, 0);
  return {
    count: segs.length,
    outcomes,
    amount,
    approved,
    charged,
    approvalRate: ratio(approved, charged),
    conversionRate: ratio(approved, segs.length),
    declines,
    avgDurationMs: segs.length === 0 ? null : Math.round(sum / segs.length),
    p95DurationMs: percentile(durations, 95),
    pspMs: { count: psp.length, p50: percentile(psp, 50), p95: percentile(psp, 95), p99: percentile(psp, 99) },
  };
}

/** The group keys of a segment (a segment with declines of two classes is in both class groups). */
function keysOf(s: SegmentRecord, by: GroupBy, tz: string): string[] {
  switch (by) {
    case 'hour':
      return [hourKey(Date.parse(s.startedAt), tz)];
    case 'day':
      return [dayKey(Date.parse(s.startedAt), tz)];
    case 'profile':
      return [s.profile];
    case 'outcome':
      return [s.outcome];
    case 'brand':
      return [s.brand ?? 'none'];
    case 'declineClass':
      return s.declineClasses.length === 0 ? ['none'] : [...new Set(s.declineClasses)];
  }
}

/** Most empty time buckets filled in (a wider range lists only the buckets that have calls). */
const MAX_FILLED_BUCKETS = 2_000;

/** Every hour/day key of [fromMs, toMs) in `tz`, in order (DST days have 23 or 25 hours). */
export function timeBuckets(by: 'hour' | 'day', fromMs: number, toMs: number, tz: string): string[] | undefined {
  const keys: string[] = [];
  const HOUR = 3_600_000;
  // An hour-by-hour walk meets every local hour and day once, DST changes included.
  for (let t = fromMs; t < toMs; t += HOUR) {
    const k = by === 'hour' ? hourKey(t, tz) : dayKey(t, tz);
    if (keys[keys.length - 1] !== k) keys.push(k);
    if (keys.length > MAX_FILLED_BUCKETS) return undefined;
  }
  const lastKey = toMs > fromMs ? (by === 'hour' ? hourKey(toMs - 1, tz) : dayKey(toMs - 1, tz)) : undefined;
  if (lastKey !== undefined && keys[keys.length - 1] !== lastKey) keys.push(lastKey);
  return keys;
}

interface SummaryOptions {
  groupBy?: GroupBy | undefined;
  tz: string;
  /** The range, to list empty hour/day buckets too (charts need the gaps). */
  fromMs?: number | undefined;
  toMs?: number | undefined;
}

export function summarize(segs: readonly SegmentRecord[], o: SummaryOptions): Summary {
  const groups: SummaryGroup[] = [];
  if (o.groupBy !== undefined) {
    const by = o.groupBy;
    const members = new Map<string, SegmentRecord[]>();
    if ((by === 'hour' || by === 'day') && o.fromMs !== undefined && o.toMs !== undefined) {
      for (const k of timeBuckets(by, o.fromMs, o.toMs, o.tz) ?? []) members.set(k, []);
    }
    for (const s of segs) {
      for (const k of keysOf(s, by, o.tz)) {
        let list = members.get(k);
        if (list === undefined) members.set(k, (list = []));
        list.push(s);
      }
    }
    const keys = [...members.keys()];
    if (by === 'hour' || by === 'day') keys.sort();
    else keys.sort((a, b) => (members.get(b)?.length ?? 0) - (members.get(a)?.length ?? 0) || a.localeCompare(b));
    for (const k of keys) groups.push({ key: k, ...figures(members.get(k) ?? []) });
  }
  return { groupBy: o.groupBy, tz: o.tz, total: figures(segs), groups };
}

interface FunnelRow {
  step: DialogueStep;
  /** Calls that reached the step (once per call, however often they came back to it). */
  reached: number;
  /** Calls that reached the step and went on past it (for `handback`, always the last: the REFER was accepted). */
  completed: number;
  /** Calls whose last step was this one. */
  ended: number;
  /** Calls that ended here because the caller hung up (outcome `hangup`). */
  abandoned: number;
  /** Invalid entries at this step, all calls, all visits. */
  invalidEntries: number;
  /** No-input timeouts at this step, all calls, all visits. */
  timeouts: number;
}

export function funnel(segs: readonly SegmentRecord[]): FunnelRow[] {
  const rows = new Map<DialogueStep, FunnelRow>(
    DIALOGUE_STEPS.map((step) => [step, { step, reached: 0, completed: 0, ended: 0, abandoned: 0, invalidEntries: 0, timeouts: 0 }]),
  );
  for (const s of segs) {
    const last = lastStep(s);
    const seen = new Set<DialogueStep>();
    for (const v of s.steps) {
      const row = rows.get(v.step) as FunnelRow;
      row.invalidEntries += v.invalidEntries;
      row.timeouts += v.timeouts;
      if (!seen.has(v.step)) {
        seen.add(v.step);
        row.reached++;
      }
    }
    for (const step of seen) {
      const row = rows.get(step) as FunnelRow;
      if (step === 'handback' && s.handBack.status === 'accepted') row.completed++;
      if (step === last) {
        row.ended++;
        if (s.outcome === 'hangup') row.abandoned++;
      } else if (step !== 'handback') {
        row.completed++;
      }
    }
  }
  return [...rows.values()];
}
