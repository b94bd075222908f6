import type { PaymentResult } from '../../src/domain/outcome.js';
import type { ParticipantDataWriter, WriteVerdict } from '../../src/genesys/platform/types.js';

/**
 * Doubles for the participant-data write-back tests: a writer implementing the seam (what
 * Genesys answers is set by the test), a clock with timers the test advances, and a small
 * stand-in for the result -> attributes mapping (the real one is src/genesys/platform/attributes.ts).
 */

export interface WriteCall {
  conversationId: string;
  attributes: Record<string, string>;
  verdict?: WriteVerdict;
}

/** Answers each write with `answer(call)`; `hold` keeps writes unanswered until released. */
export class WriterDouble implements ParticipantDataWriter {
  readonly calls: WriteCall[] = [];
  answer: (c: WriteCall) => WriteVerdict = () => ({ kind: 'written' });
  hold = false;
  readonly #held: (() => void)[] = [];
  closed = false;

  async write(conversationId: string, attributes: Readonly<Record<string, string>>): Promise<WriteVerdict> {
    const c: WriteCall = { conversationId, attributes: { ...attributes } };
    this.calls.push(c);
    if (this.hold) await new Promise<void>((r) => this.#held.push(r));
    const v = this.answer(c);
    c.verdict = v;
    return v;
  }

  /** Lets the held writes answer (with `answer` as it is then). */
  release(): void {
    for (const r of this.#held.splice(0)) r();
  }

  get heldCount(): number {
    return this.#held.length;
  }

  /** The writes Genesys acknowledged, as `conversationId/callRef#version` where the attributes carry them. */
  written(): WriteCall[] {
    return this.calls.filter((c) => c.verdict?.kind === 'written');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A clock whose timers fire only when the test advances it. */
export class TestClock {
  now = Date.parse('2026-12-07T10:00:00.000Z');
  readonly #timers: { at: number; fn: () => void; live: boolean }[] = [];

  readonly read = (): number => this.now;

  readonly setTimer = (fn: () => void, ms: number): (() => void) => {
    const t = { at: this.now + ms, fn, live: true };
    this.#timers.push(t);
    return () => {
      t.live = false;
    };
  };

  /** When the next live timer fires (undefined: none). */
  get nextAt(): number | undefined {
    const live = this.#timers.filter((t) => t.live).map((t) => t.at);
    return live.length === 0 ? undefined : Math.min(...live);
  }

  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.now = due.at;
      due.fn();
    }
    this.now = until;
  }
}

/** The private stand-in for the attribute mapping: the names the tests look for. */
export function attributesOf(r: PaymentResult & { id?: string }): Record<string, string> {
  const a: Record<string, string> = { 'payivr.outcome': r.outcome, 'payivr.mode': r.mode };
  if (r.id !== undefined) a['payivr.callRef'] = r.id;
  if (r.brand !== undefined) a['payivr.brand'] = r.brand;
  if (r.last4 !== undefined) a['payivr.last4'] = r.last4;
  if (r.transactionId !== undefined) a['payivr.pspReference'] = r.transactionId;
  if (r.origin !== undefined) a['payivr.origin'] = r.origin;
  if (r.stage !== undefined) a['payivr.stage'] = r.stage;
  return a;
}

/** Resolves once `cond` holds (I/O of the spool runs in the thread pool). */
export async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`still waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
