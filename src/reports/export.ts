import type { SegmentRecord } from './segment.js';

/**
 * Segment records as CSV (RFC 4180, one row per call) and NDJSON (one record per line).
 * Pure. Text cells that a spreadsheet would run as a formula are prefixed with a quote.
 */

const CSV_COLUMNS = [
  'id',
  'node',
  'profile',
  'mode',
  'language',
  'startedAt',
  'answeredAt',
  'endedAt',
  'durationMs',
  'outcome',
  'amount',
  'amountSource',
  'currency',
  'brand',
  'last4',
  'charges',
  'declines',
  'invalidEntries',
  'timeouts',
  'declineClasses',
  'pspMs',
  'handBackTarget',
  'handBackStatus',
  'lastStep',
  'steps',
] as const;

function cell(v: string | number | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'number') return String(v);
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function row(s: SegmentRecord): string {
  const start = Date.parse(s.startedAt);
  const values: Record<(typeof CSV_COLUMNS)[number], string | number | undefined> = {
    id: s.id,
    node: s.node,
    profile: s.profile,
    mode: s.mode,
    language: s.language,
    startedAt: s.startedAt,
    answeredAt: s.answeredAt,
    endedAt: s.endedAt,
    durationMs: s.durationMs,
    outcome: s.outcome,
    amount: s.amount,
    amountSource: s.amountSource,
    currency: s.currency,
    brand: s.brand,
    last4: s.last4,
    charges: s.attempts.charges,
    declines: s.attempts.declines,
    invalidEntries: s.attempts.invalidEntries,
    timeouts: s.attempts.timeouts,
    declineClasses: s.declineClasses.join(';'),
    pspMs: s.pspMs.map((m) => Math.round(m)).join(';'),
    handBackTarget: s.handBack.target,
    handBackStatus: s.handBack.status,
    lastStep: s.steps[s.steps.length - 1]?.step,
    // step@ms-after-start, in order
    steps: s.steps.map((v) => `${v.step}@${Date.parse(v.at) - start}`).join(';'),
  };
  return CSV_COLUMNS.map((c) => cell(values[c])).join(',');
}

export function toCsv(segs: readonly SegmentRecord[]): string {
  return [CSV_COLUMNS.join(','), ...segs.map(row)].join('\r\n') + '\r\n';
}

export function toNdjson(segs: readonly SegmentRecord[]): string {
  return segs.map((s) => JSON.stringify(s)).join('\n') + (segs.length > 0 ? '\n' : '');
}
