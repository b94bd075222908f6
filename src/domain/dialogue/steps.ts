import type { DialogueState, Phase } from './state.js';
import type { DialogueEvent } from './types.js';

/**
 * The dialogue steps reports count (the funnel). A step is where the caller is, named from the
 * machine's phase; `answer` and `handback` are the call layer's steps around the dialogue.
 * Listed in the order a caller meets them.
 */
export const DIALOGUE_STEPS = [
  'answer',
  'amount-offer',
  'amount',
  'amount-confirm',
  'card-number',
  'card-number-confirm',
  'expiry',
  'expiry-confirm',
  'security-code',
  'security-code-confirm',
  'charging',
  'other-card',
  'result',
  'handback',
] as const;
export type DialogueStep = (typeof DIALOGUE_STEPS)[number];

/** The step of a phase; undefined for the phases that are not a step (idle, done). */
function stepOfPhase(p: Phase): DialogueStep | undefined {
  switch (p.kind) {
    case 'amount-entry':
      return 'amount';
    case 'card-entry':
      return p.field === 'pan' ? 'card-number' : p.field === 'expiry' ? 'expiry' : 'security-code';
    case 'menu':
      switch (p.menu) {
        case 'amount-context':
        case 'amount-choice':
          return 'amount-offer';
        case 'confirm-amount':
          return 'amount-confirm';
        case 'confirm-pan':
          return 'card-number-confirm';
        case 'confirm-expiry':
          return 'expiry-confirm';
        case 'confirm-security-code':
          return 'security-code-confirm';
        case 'other-card':
          return 'other-card';
      }
      return undefined;
    case 'charging':
      return 'charging';
    case 'closing':
      return 'result';
    default:
      return undefined;
  }
}

/**
 * What one transition means for reports (no card data: counts and step names only).
 * `step`: the step after the transition (undefined when the dialogue is not in a step);
 * `invalidEntries`: wrong entries the transition counted (silences excluded), at the step before it;
 * `noInputTimeout`: a timer expired with nothing typed at the step before it.
 */
export interface DialogueProgress {
  step: DialogueStep | undefined;
  previous: DialogueStep | undefined;
  invalidEntries: number;
  noInputTimeout: boolean;
}

function typedNothing(p: Phase): boolean {
  if (p.kind === 'amount-entry') return p.keys.length === 0;
  if (p.kind === 'card-entry') return p.digits.length === 0;
  return p.kind === 'menu';
}

/**
 * What `progressOf` needs from the state before a transition, taken before `step` runs (the step
 * may wipe the field buffer it replaces, and a wiped buffer reads as empty).
 */
interface ProgressMark {
  step: DialogueStep | undefined;
  invalidEntries: number;
  timerId: number | undefined;
  typedNothing: boolean;
}

export function markOf(s: DialogueState): ProgressMark {
  return { step: stepOfPhase(s.phase), invalidEntries: s.counts.invalidEntries, timerId: s.timerId, typedNothing: typedNothing(s.phase) };
}

export function progressOf(before: ProgressMark | undefined, event: DialogueEvent | undefined, next: DialogueState): DialogueProgress {
  const noInputTimeout =
    before !== undefined && event?.type === 'timeout' && before.timerId !== undefined && event.timerId === before.timerId && before.typedNothing;
  // The machine counts a silence as an invalid entry too; reports keep the two apart.
  const counted = before === undefined ? 0 : next.counts.invalidEntries - before.invalidEntries;
  const invalidEntries = Math.max(0, counted - (noInputTimeout ? 1 : 0));
  return { step: stepOfPhase(next.phase), previous: before?.step, invalidEntries, noInputTimeout };
}
