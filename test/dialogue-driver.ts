import { expect } from 'vitest';
import { createDialogue, startDialogue, step, type DialogueState } from '../src/domain/dialogue/machine.js';
import { heldBuffers } from '../src/domain/dialogue/state.js';
import type { DialogueCommand, DialogueContext, DialogueEvent, DialogueInput, DialogueResult, DialogueSettings } from '../src/domain/dialogue/types.js';
import { allPromptIds } from '../src/domain/prompts/catalog.js';
import type { SensitiveDigits } from '../src/domain/sensitive.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';

/**
 * A test driver for the pure dialogue: feeds events, plays the call layer's part (tracks the
 * current play, timer and charge) and checks invariants after every step:
 * - step never throws; nothing is emitted after `finish`; at most one `finish`;
 * - every played fragment exists in the prompt catalog of the call's language;
 * - a `charge` never carries a wiped or empty buffer;
 * - no state or command, serialized, contains a secret (the test card digits);
 * - once finished, every card buffer ever seen (states and charges) is wiped.
 */

export type PlayCmd = Extract<DialogueCommand, { type: 'play' }>;
export type ChargeCmd = Extract<DialogueCommand, { type: 'charge' }>;

export interface RevealedCard {
  pan: string;
  expiry: string;
  securityCode: string | undefined;
}

export type Psp = (card: RevealedCard, attempt: number) => ChargeOutcome;

export const BASE_SETTINGS: DialogueSettings = {
  language: 'en-US',
  currency: 'EUR',
  amountSource: 'context',
  minAmount: 100,
  maxAmount: 1_000_000,
  allowedBrands: ['visa', 'mastercard', 'amex'],
  securityCode: 'required',
  maxDeclines: 3,
  attempts: { amount: 3, pan: 3, expiry: 3, securityCode: 3, confirm: 3 },
  readback: { amount: true, pan: true, expiry: true, securityCode: false },
  timeouts: { firstDigitMs: 8000, interDigitMs: 5000 },
};

export const BASE_CONTEXT: DialogueContext = { identified: true, mode: 'automated', amount: 4990, reference: 'INV-77' };
export const NOW = { year: 2026, month: 11 };

export function makeInput(settings: Partial<DialogueSettings> = {}, context: Partial<DialogueContext> = {}): DialogueInput {
  return { settings: { ...BASE_SETTINGS, ...settings }, context: { ...BASE_CONTEXT, ...context }, now: NOW };
}

const catalogs = new Map<string, Set<string>>();
function catalog(lang: 'en-US' | 'fr-FR'): Set<string> {
  let c = catalogs.get(lang);
  if (c === undefined) {
    c = new Set(allPromptIds(lang));
    catalogs.set(lang, c);
  }
  return c;
}

export class DialogueDriver {
  state: DialogueState;
  readonly input: DialogueInput;
  readonly commands: DialogueCommand[] = [];
  readonly plays: PlayCmd[] = [];
  readonly charges: ChargeCmd[] = [];
  /** Card digits as the PSP saw them (revealed at the time of the charge command). */
  readonly revealed: RevealedCard[] = [];
  readonly buffers = new Set<SensitiveDigits>();
  currentPlay: PlayCmd | undefined;
  timerId: number | undefined;
  timerMs: number | undefined;
  waitMusic = false;
  pendingCharge: ChargeCmd | undefined;
  result: DialogueResult | undefined;
  finishes = 0;
  psp: Psp | undefined;
  /** Strings that must never appear in a serialized state or command. */
  secrets: string[] = [];
  #answering = false;

  constructor(input: DialogueInput, opts: { psp?: Psp; secrets?: string[]; start?: boolean } = {}) {
    this.input = input;
    this.psp = opts.psp;
    this.secrets = opts.secrets ?? [];
    if (opts.start === false) {
      this.state = createDialogue(input);
    } else {
      const t = startDialogue(input);
      this.state = t.state;
      this.#absorb(t.commands);
    }
  }

  get finished(): boolean {
    return this.finishes > 0;
  }

  send(ev: DialogueEvent): DialogueCommand[] {
    const wasFinished = this.finished;
    const t = step(this.state, ev);
    this.state = t.state;
    if (wasFinished) expect(t.commands, 'commands after finish').toEqual([]);
    this.#absorb(t.commands);
    this.#answerCharge();
    return t.commands;
  }

  #absorb(cmds: DialogueCommand[]): void {
    for (const b of heldBuffers(this.state)) this.buffers.add(b);
    this.#checkSecrets(this.state, 'state');
    for (const cmd of cmds) {
      this.commands.push(cmd);
      this.#checkSecrets(cmd, cmd.type);
      switch (cmd.type) {
        case 'play': {
          const known = catalog(this.input.settings.language);
          for (const f of cmd.fragments) expect(known.has(f), `fragment ${f} in catalog`).toBe(true);
          this.plays.push(cmd);
          this.currentPlay = cmd;
          this.waitMusic = false;
          break;
        }
        case 'play-wait':
          this.currentPlay = undefined;
          this.waitMusic = true;
          break;
        case 'stop-play':
          this.currentPlay = undefined;
          this.waitMusic = false;
          break;
        case 'start-timer':
          this.timerId = cmd.timerId;
          this.timerMs = cmd.ms;
          break;
        case 'cancel-timer':
          this.timerId = undefined;
          this.timerMs = undefined;
          break;
        case 'charge': {
          const { pan, expiry, securityCode } = cmd.card;
          for (const d of [pan, expiry, securityCode]) {
            if (d === undefined) continue;
            expect(d.wiped, 'charge with a wiped buffer').toBe(false);
            expect(d.length, 'charge with an empty buffer').toBeGreaterThan(0);
            this.buffers.add(d);
          }
          this.revealed.push({ pan: pan.reveal(), expiry: expiry.reveal(), securityCode: securityCode?.reveal() });
          this.charges.push(cmd);
          this.pendingCharge = cmd;
          break;
        }
        case 'finish':
          this.finishes++;
          expect(this.finishes, 'exactly one finish').toBe(1);
          this.result = cmd.result;
          this.timerId = undefined;
          break;
      }
    }
    if (this.finished) {
      for (const b of this.buffers) expect(b.wiped, 'every card buffer wiped after finish').toBe(true);
    }
  }

  #checkSecrets(value: unknown, what: string): void {
    if (this.secrets.length === 0) return;
    const json = JSON.stringify(value);
    for (const s of this.secrets) expect(json.includes(s), `${what} contains a secret`).toBe(false);
  }

  #answerCharge(): void {
    if (this.#answering || this.psp === undefined) return;
    this.#answering = true;
    try {
      while (this.pendingCharge !== undefined && !this.finished) {
        const c = this.pendingCharge;
        const outcome = this.psp(this.revealed[this.revealed.length - 1] as RevealedCard, c.attempt);
        this.pendingCharge = undefined;
        // The PSP answers after "please wait" has been said (a result that comes earlier is held
        // back by the dialogue until then: tested on its own).
        this.endPlay();
        this.send({ type: 'charge-result', outcome });
      }
    } finally {
      this.#answering = false;
    }
  }

  /** The call layer reports the end of the current prompt. */
  endPlay(interrupted = false): DialogueCommand[] {
    const p = this.currentPlay;
    if (p === undefined) return [];
    this.currentPlay = undefined;
    return this.send({ type: 'play-done', playId: p.playId, interrupted });
  }

  /** Lets the current prompt end, then presses the keys one by one. */
  keys(keys: string): void {
    this.endPlay();
    this.typeAhead(keys);
  }

  /** Presses keys without letting the current prompt end first (type-ahead / barge-in). */
  typeAhead(keys: string): void {
    for (const k of keys) this.send({ type: 'digit', digit: k as DtmfDigit });
  }

  fireTimer(): DialogueCommand[] {
    const id = this.timerId;
    if (id === undefined) throw new Error('no timer running');
    this.timerId = undefined;
    return this.send({ type: 'timeout', timerId: id });
  }

  answer(outcome: ChargeOutcome): DialogueCommand[] {
    this.pendingCharge = undefined;
    return this.send({ type: 'charge-result', outcome });
  }

  hangup(): DialogueCommand[] {
    return this.send({ type: 'hangup' });
  }

  lastPlay(): PlayCmd {
    const p = this.plays[this.plays.length - 1];
    if (p === undefined) throw new Error('nothing played');
    return p;
  }

  /** Lets the prompts play to the end until the dialogue finishes (closing announcements). */
  playOut(limit = 10): DialogueResult {
    for (let i = 0; i < limit && !this.finished; i++) this.endPlay();
    if (this.result === undefined) throw new Error('dialogue did not finish');
    return this.result;
  }
}
