import { z } from 'zod';
import { AMOUNT_SOURCES, CALL_MODES, DECLINE_CLASSES, OUTCOMES, type AmountSource, type DeclineClass, type Outcome } from '../domain/outcome.js';
import { DIALOGUE_STEPS, type DialogueStep } from '../domain/dialogue/steps.js';
import { findCardData } from '../domain/card-data-guard.js';
import { ENTRY_MODES, type EntryMode } from '../domain/entry.js';
import { PayIvrError } from '../errors.js';

/**
 * The segment record: one payment IVR call as reports see it, and nothing more. Never card data:
 * brand and last 4 at most; no reference, account or conversation id either (a report needs none).
 * Times are ISO UTC; `at` of a step is the time it was reached.
 */
/** Who took the card: the IVR (automated or agent mode), or the caller keying it with an agent on the line (Agent Assist). */
export const SEGMENT_MODES = [...CALL_MODES, 'assist'] as const;
export type SegmentMode = (typeof SEGMENT_MODES)[number];

export interface SegmentStepVisit {
  step: DialogueStep;
  at: string;
  /** Invalid entries counted while at this step (this visit). */
  invalidEntries: number;
  /** No-input timeouts while at this step (this visit). */
  timeouts: number;
}

export interface SegmentRecord {
  /** Local call id (the result record's id). */
  id: string;
  node: string;
  profile: string;
  mode: SegmentMode;
  /** IVR calls: how pay-ivr entered the conversation (transfer or conference leg). */
  entry?: EntryMode | undefined;
  language: string;
  startedAt: string;
  answeredAt?: string | undefined;
  endedAt: string;
  durationMs: number;
  /** Each step reached, in order; a step re-entered after another one is a new visit. */
  steps: SegmentStepVisit[];
  attempts: { charges: number; declines: number; invalidEntries: number; timeouts: number };
  /** The class of each decline, in order. */
  declineClasses: DeclineClass[];
  /** Latency of each PSP charge request, ms. */
  pspMs: number[];
  outcome: Outcome;
  /** Minor units of `currency`; absent when no amount was known. */
  amount?: number | undefined;
  /** Where the amount came from (INVITE context, typed by the caller, balance offered). */
  amountSource?: AmountSource | undefined;
  currency: string;
  brand?: string | undefined;
  last4?: string | undefined;
  handBack: { target: string; status: 'accepted' | 'failed' | 'skipped' };
}

const iso = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/);
const word = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const count = z.number().int().min(0).max(1_000_000);

/** The segment as it may be written: strict (no unknown field), closed vocabularies. */
const segmentSchema = z.strictObject({
  id: word,
  node: word,
  profile: word,
  mode: z.enum(SEGMENT_MODES),
  entry: z.enum(ENTRY_MODES).optional(),
  language: z.string().regex(/^[a-z]{2}(-[A-Z]{2})?$/),
  startedAt: iso,
  answeredAt: iso.optional(),
  endedAt: iso,
  durationMs: count.max(7 * 24 * 3600 * 1000),
  steps: z
    .array(z.strictObject({ step: z.enum(DIALOGUE_STEPS), at: iso, invalidEntries: count, timeouts: count }))
    .max(500),
  attempts: z.strictObject({ charges: count, declines: count, invalidEntries: count, timeouts: count }),
  declineClasses: z.array(z.enum(DECLINE_CLASSES)).max(100),
  pspMs: z.array(z.number().min(0).max(3_600_000)).max(100),
  outcome: z.enum(OUTCOMES),
  amount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  amountSource: z.enum(AMOUNT_SOURCES).optional(),
  currency: z.string().regex(/^[A-Z]{3}$/),
  brand: z.string().regex(/^[a-z]{1,16}$/).optional(),
  last4: z.string().regex(/^[0-9]{4}$/).optional(),
  handBack: z.strictObject({ target: z.string().max(512), status: z.enum(['accepted', 'failed', 'skipped']) }),
});

/**
 * Throws ERR_STORE when `rec` is not a well-formed segment or holds card-like data (the path of
 * the problem only, never the value). Called before every write (the card-data rule: domain/card-data-guard.ts).
 */
export function assertValidSegment(rec: unknown): asserts rec is SegmentRecord {
  const parsed = segmentSchema.safeParse(rec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue === undefined ? '$' : ['$', ...issue.path.map(String)].join('.');
    throw new PayIvrError('ERR_STORE', `segment refused: invalid field ${path}`, { details: { path } });
  }
  const finding = findCardData(rec);
  if (finding !== undefined) {
    throw new PayIvrError('ERR_STORE', `segment refused: card-like data at ${finding.path}`, { details: { ...finding } });
  }
}

/** Parses a stored segment; undefined when it does not validate (skipped by readers). */
export function parseSegment(json: string | null | undefined): SegmentRecord | undefined {
  if (json === null || json === undefined) return undefined;
  try {
    const v = JSON.parse(json) as unknown;
    return segmentSchema.safeParse(v).success ? (v as SegmentRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** The last step a segment reached before it ended. */
export function lastStep(s: SegmentRecord): DialogueStep | undefined {
  return s.steps[s.steps.length - 1]?.step;
}
